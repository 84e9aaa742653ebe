#!/usr/bin/env bash
# The Evidently UI service of the team profile, on loopback (tests, CI, a laptop).
#
#   eval "$(deploy/evidently/local_server.sh start)"   # exports FLIGHTS_EVIDENTLY_URL and
#                                                       # FLIGHTS_EVIDENTLY_SECRET
#   deploy/evidently/local_server.sh stop
#
# `evidently ui` on 127.0.0.1:$FLIGHTS_EVIDENTLY_PORT (default 8001) over the workspace folder
# $FLIGHTS_EVIDENTLY_DIR/workspace (default /tmp/flights-evidently) on this host: clients reach it
# over http only (RemoteWorkspace). Writes need the service's secret: $FLIGHTS_EVIDENTLY_SECRET, or
# one generated at the first start and kept beside the service, readable by its owner only; it is
# printed only inside the export line. Reads (the UI, the dashboard) are open on loopback.
# $FLIGHTS_EVIDENTLY_DIR must be this user's folder with mode 0700 (created so; else refused), its
# files and log private (deploy/lib/state.sh).
set -euo pipefail
# shellcheck source=../lib/state.sh
source "$(dirname "$0")/../lib/state.sh"
DIR=${FLIGHTS_EVIDENTLY_DIR:-/tmp/flights-evidently}
PORT=${FLIGHTS_EVIDENTLY_PORT:-8001}
EVIDENTLY=${EVIDENTLY_BIN:-$(dirname "$0")/../../.venv/bin/evidently}

start() {
  private_dir "$DIR"
  mkdir -p "$DIR/workspace"
  SECRET_FILE="$DIR/write.secret"
  if [ -n "${FLIGHTS_EVIDENTLY_SECRET:-}" ]; then
    SECRET=$FLIGHTS_EVIDENTLY_SECRET
  elif [ -s "$SECRET_FILE" ]; then
    SECRET=$(cat "$SECRET_FILE")
  else
    SECRET=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
    printf '%s' "$SECRET" > "$SECRET_FILE"
  fi
  if ! curl -s -o /dev/null "http://127.0.0.1:$PORT/api/version"; then
    # the secret goes in through the environment (EVIDENTLY_SECRET), not the command line, which ps shows
    (close_inherited_fds
     EVIDENTLY_SECRET="$SECRET" DO_NOT_TRACK=1 exec nohup "$EVIDENTLY" ui --workspace "$DIR/workspace" \
      --host 127.0.0.1 --port "$PORT" > "$DIR/server.log" 2>&1) &
    SERVER=$!
    record_pid "$DIR/server.pid" "$SERVER"
    for _ in $(seq 120); do
      curl -s -o /dev/null "http://127.0.0.1:$PORT/api/version" && break
      kill -0 "$SERVER" 2>/dev/null || break
      sleep 0.5
    done
    curl -s -o /dev/null "http://127.0.0.1:$PORT/api/version" || { echo "evidently ui did not start: $DIR/server.log" >&2; tail -20 "$DIR/server.log" >&2; exit 1; }
  fi
  echo "export FLIGHTS_EVIDENTLY_URL=http://127.0.0.1:$PORT FLIGHTS_EVIDENTLY_SECRET=$SECRET"
}

stop() {
  [ -e "$DIR" ] || exit 0
  private_dir "$DIR"
  PID=$(live_pid "$DIR/server.pid" "evidently ui")
  rm -f "$DIR/server.pid"
  [ -n "$PID" ] || exit 0  # not running, or the pid is no longer the server's: nothing to signal
  kill "$PID" 2>/dev/null || true
  for _ in $(seq 60); do kill -0 "$PID" 2>/dev/null || return 0; sleep 0.5; done  # gone before a restart
  kill -KILL "$PID" 2>/dev/null || true
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
