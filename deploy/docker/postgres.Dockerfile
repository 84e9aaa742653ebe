# PostgreSQL 15 from Debian's packages, for where the official `postgres:15-bookworm` image (the
# team profile's default) cannot be pulled. Same interface as the official image, as far as the
# profile uses it: POSTGRES_USER, POSTGRES_PASSWORD_FILE, PGDATA, /docker-entrypoint-initdb.d/*.sql
# run once on an empty data folder, `postgres` with extra `-c` flags as the command.
ARG BASE=flights-base:bookworm
FROM ${BASE}
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-15 > /dev/null \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
 && mkdir -p /var/lib/postgresql/data /docker-entrypoint-initdb.d && chown postgres:postgres /var/lib/postgresql/data \
 && chmod 0700 /var/lib/postgresql/data
COPY deploy/docker/postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PGDATA=/var/lib/postgresql/data PATH=/usr/lib/postgresql/15/bin:/usr/local/bin:/usr/bin:/bin
USER postgres
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
