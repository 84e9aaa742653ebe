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
# $FLIGHTS_MLFLOW_DIR must be this user's folder with mode 0700 (created so; else refused), its
# files and log private; the backend URI reaches the server through its environment, never its
# command line (deploy/lib/state.sh).
set -euo pipefail
# shellcheck source=../lib/state.sh
source "$(dirname "$0")/../lib/state.sh"
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
  private_dir "$DIR"
  SECRET="$DIR/admin.password"
  if [ -n "${FLIGHTS_MLFLOW_PASSWORD:-}" ]; then
    PASSWORD=$FLIGHTS_MLFLOW_PASSWORD
  elif [ -s "$SECRET" ]; then
    PASSWORD=$(cat "$SECRET")
  else
    PASSWORD=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
    printf '%s' "$PASSWORD" > "$SECRET"
  fi
  # the key of the UI's CSRF protection: generated once, kept beside the server
  KEY="$DIR/flask.key"
  [ -s "$KEY" ] || od -An -N24 -tx1 /dev/urandom | tr -d ' \n' > "$KEY"
  BACKEND=${FLIGHTS_MLFLOW_BACKEND:-${FLIGHTS_POSTGRES_URL:+${FLIGHTS_POSTGRES_URL%/}/mlflow}}
  BACKEND=${BACKEND:-sqlite:///$DIR/mlflow.db}
  # the auth app's own settings: its user database beside the server, the admin from above
  cat > "$DIR/basic_auth.ini" <<INI
[mlflow]
default_permission = READ
database_uri = sqlite:///$DIR/basic_auth.db
admin_username = $USER_NAME
admin_password = $PASSWORD
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
auth_cache_ttl_seconds = $AUTH_CACHE_SECONDS
INI
  if ! curl -s -o /dev/null "http://127.0.0.1:$PORT/health"; then
    # the backend URI (it may hold the database password) goes in through the environment, not the
    # command line, which `ps` shows to every local user
    (close_inherited_fds
     MLFLOW_AUTH_CONFIG_PATH="$DIR/basic_auth.ini" MLFLOW_FLASK_SERVER_SECRET_KEY="$(cat "$KEY")" MLFLOW_DISABLE_TELEMETRY=true \
      MLFLOW_BACKEND_STORE_URI="$BACKEND" exec nohup "$MLFLOW" server --app-name basic-auth -h 127.0.0.1 -p "$PORT" --workers 1 \
      --serve-artifacts --artifacts-destination "$ARTIFACTS" \
      > "$DIR/server.log" 2>&1) &
    SERVER=$!
    record_pid "$DIR/server.pid" "$SERVER"
    for _ in $(seq 240); do
      curl -s -o /dev/null "http://127.0.0.1:$PORT/health" && break
      kill -0 "$SERVER" 2>/dev/null || break  # it died: say why below
      sleep 0.5
    done
    curl -s -o /dev/null "http://127.0.0.1:$PORT/health" || { echo "mlflow server did not start: $DIR/server.log" >&2; tail -20 "$DIR/server.log" >&2; exit 1; }
  fi
  echo "export MLFLOW_TRACKING_URI=http://127.0.0.1:$PORT MLFLOW_TRACKING_USERNAME=$USER_NAME MLFLOW_TRACKING_PASSWORD=$PASSWORD"
}

stop() {
  [ -e "$DIR" ] || exit 0
  private_dir "$DIR"
  PID=$(live_pid "$DIR/server.pid" "mlflow server")
  rm -f "$DIR/server.pid"
  [ -n "$PID" ] || exit 0  # not running, or the pid is no longer the server's: nothing to signal
  pkill -TERM -P "$PID" 2>/dev/null || true  # its uvicorn workers
  kill "$PID" 2>/dev/null || true
  for _ in $(seq 60); do kill -0 "$PID" 2>/dev/null || return 0; sleep 0.5; done  # gone before a restart
  kill -KILL "$PID" 2>/dev/null || true
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
