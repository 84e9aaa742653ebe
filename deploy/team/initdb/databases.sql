-- Run once by the PostgreSQL container on an empty data folder (/docker-entrypoint-initdb.d), as
-- POSTGRES_USER (`pipeline`): one database per store of the team profile.
CREATE DATABASE dagster;
CREATE DATABASE warehouse;
CREATE DATABASE mlflow;
