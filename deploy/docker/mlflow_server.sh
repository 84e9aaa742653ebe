#!/bin/sh
# The MLflow tracking server of the team profile (the `mlflow` container, code image): PostgreSQL
# backend store, artifacts proxied by the server into its own volume, basic authentication on (the
# admin `pipeline`; anonymous requests refused). Credentials come from /run/secrets/mlflow.env
# (MLFLOW_BACKEND_STORE_URI, MLFLOW_ADMIN_PASSWORD, MLFLOW_FLASK_SERVER_SECRET_KEY), exported by
# the entrypoint; the auth app's settings are written into the volume, readable by this user only.
set -eu
STATE=/var/lib/flights/mlflow
umask 077
cat > "$STATE/basic_auth.ini" <<INI
[mlflow]
default_permission = READ
database_uri = sqlite:///$STATE/basic_auth.db
admin_username = pipeline
admin_password = $MLFLOW_ADMIN_PASSWORD
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
auth_cache_ttl_seconds = 60
INI
unset MLFLOW_ADMIN_PASSWORD
export MLFLOW_AUTH_CONFIG_PATH="$STATE/basic_auth.ini"
# Host headers accepted (DNS-rebinding protection): its name on the backplane and the published
# loopback port
exec mlflow server --app-name basic-auth -h 0.0.0.0 -p 5050 --workers "${FLIGHTS_MLFLOW_WORKERS:-2}" \
  --serve-artifacts --artifacts-destination "$STATE/artifacts" \
  --allowed-hosts "mlflow,mlflow:5050,localhost,localhost:${FLIGHTS_TEAM_MLFLOW_PORT:-5050},127.0.0.1,127.0.0.1:${FLIGHTS_TEAM_MLFLOW_PORT:-5050}"
