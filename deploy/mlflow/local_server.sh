#!/usr/bin/env bash
# The MLflow tracking server of the team profile, on loopback (tests, CI, a laptop).
#
#   eval "$(deploy/mlflow/local_server.sh start)"   # exports MLFLOW_TRACKING_URI (http only) and
#                                                    # MLFLOW_TRACKING_USERNAME / _PASSWORD
#   deploy/mlflow/local_server.sh stop
#
# `mlflow server` with its basic-auth app on 127.0.0.1:$FLIGHTS_MLFLOW_PORT (default 5050):
# - backend store: $FLIGHTS_MLFLOW_BACKEND, else the `mlflow` database of FLIGHTS_POSTGRES_URL
#   when set (the team profile), else SQLite in $FLIGHTS_MLFLOW_DIR (default /tmp/flights-mlflow);
# - artifacts proxied by the server (--serve-artifacts) to $FLIGHTS_MLFLOW_ARTIFACTS (a folder on
#   this host or any object-store URI; default $FLIGHTS_MLFLOW_DIR/artifacts): clients need
#   nothing but the http URL;
# - authentication on: the admin `pipeline` gets $FLIGHTS_MLFLOW_PASSWORD (a random one is
#   generated at the first start and kept beside the server, readable by its owner only; it is
#   printed only inside the export line); anonymous requests are refused.
set -euo pipefail
DIR=${FLIGHTS_MLFLOW_DIR:-/tmp/flights-mlflow}
PORT=${FLIGHTS_MLFLOW_PORT:-5050}
ARTIFACTS=${FLIGHTS_MLFLOW_ARTIFACTS:-$DIR/artifacts}
MLFLOW=${MLFLOW_BIN:-$(dirname "$0")/../../.venv/bin/mlflow}
USER_NAME=pipeline
# a verified credential is remembered this long inside the server (MLflow's auth cache; off by
# default): without it every request pays a password-hash check (~0.26 s here), with it a changed
# or revoked password takes up to this long to take effect
AUTH_CACHE_SECONDS=${FLIGHTS_MLFLOW_AUTH_CACHE_SECONDS:-60}

start() {
  mkdir -p "$DIR"
  SECRET="$DIR/admin.password"
  if [ -n "${FLIGHTS_MLFLOW_PASSWORD:-}" ]; then
    PASSWORD=$FLIGHTS_MLFLOW_PASSWORD
  elif [ -s "$SECRET" ]; then
    PASSWORD=$(cat "$SECRET")
  else
    PASSWORD=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
    (umask 077; printf '%s' "$PASSWORD" > "$SECRET")
  fi
  # the key of the UI's CSRF protection: generated once, kept beside the server
  KEY="$DIR/flask.key"
  [ -s "$KEY" ] || (umask 077; od -An -N24 -tx1 /dev/urandom | tr -d ' \n' > "$KEY")
  BACKEND=${FLIGHTS_MLFLOW_BACKEND:-${FLIGHTS_POSTGRES_URL:+${FLIGHTS_POSTGRES_URL%/}/mlflow}}
  BACKEND=${BACKEND:-sqlite:///$DIR/mlflow.db}
  # the auth app's own settings: its user database beside the server, the admin from above
  (umask 077; cat > "$DIR/basic_auth.ini" <<INI
[mlflow]
default_permission = READ
database_uri = sqlite:///$DIR/basic_auth.db
admin_username = $USER_NAME
admin_password = $PASSWORD
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
auth_cache_ttl_seconds = $AUTH_CACHE_SECONDS
INI
  )
  if ! curl -s -o /dev/null "http://127.0.0.1:$PORT/health"; then
    # the backend URI (it may hold the database password) goes in through the environment, not the
    # command line, which `ps` shows to every local user
    MLFLOW_AUTH_CONFIG_PATH="$DIR/basic_auth.ini" MLFLOW_FLASK_SERVER_SECRET_KEY="$(cat "$KEY")" MLFLOW_DISABLE_TELEMETRY=true \
      MLFLOW_BACKEND_STORE_URI="$BACKEND" nohup "$MLFLOW" server --app-name basic-auth -h 127.0.0.1 -p "$PORT" --workers 1 \
      --serve-artifacts --artifacts-destination "$ARTIFACTS" \
      > "$DIR/server.log" 2>&1 &
    echo $! > "$DIR/server.pid"
    for _ in $(seq 240); do
      curl -s -o /dev/null "http://127.0.0.1:$PORT/health" && break
      kill -0 "$(cat "$DIR/server.pid")" 2>/dev/null || break  # it died: say why below
      sleep 0.5
    done
    curl -s -o /dev/null "http://127.0.0.1:$PORT/health" || { echo "mlflow server did not start: $DIR/server.log" >&2; tail -20 "$DIR/server.log" >&2; exit 1; }
  fi
  echo "export MLFLOW_TRACKING_URI=http://127.0.0.1:$PORT MLFLOW_TRACKING_USERNAME=$USER_NAME MLFLOW_TRACKING_PASSWORD=$PASSWORD"
}

stop() {
  [ -s "$DIR/server.pid" ] || exit 0
  PID=$(cat "$DIR/server.pid")
  pkill -TERM -P "$PID" 2>/dev/null || true  # its uvicorn workers
  kill "$PID" 2>/dev/null || true
  rm -f "$DIR/server.pid"
  for _ in $(seq 60); do kill -0 "$PID" 2>/dev/null || return 0; sleep 0.5; done  # gone before a restart
  kill -KILL "$PID" 2>/dev/null || true
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
