#!/usr/bin/env bash
# A Redis broker on loopback for the scale-out profile (tests, CI, a laptop).
#
#   eval "$(deploy/celery/local_broker.sh start)"   # exports FLIGHTS_CELERY_BROKER / _BACKEND
#   deploy/celery/local_broker.sh flush             # empties its queues and results
#   deploy/celery/local_broker.sh stop
#
# Installs the OS package if it is missing (apt, as root); listens on 127.0.0.1:$FLIGHTS_REDIS_PORT
# (default 6380) only, protected mode on, nothing persisted. A password is required: any local user
# could otherwise read, inject or flush the Celery tasks. It is $FLIGHTS_REDIS_PASSWORD, else one
# generated at the first start and kept beside the server (mode 0600); the server reads it from its
# configuration file (mode 0600), redis-cli from its environment (REDISCLI_AUTH), the workers and
# the launcher from the broker URLs, printed only inside the export line: never a command line.
# $FLIGHTS_REDIS_DIR (default /tmp/flights-redis) must be this user's folder with mode 0700
# (created so; else refused: deploy/lib/state.sh).
set -euo pipefail
# shellcheck source=../lib/state.sh
source "$(dirname "$0")/../lib/state.sh"
PORT=${FLIGHTS_REDIS_PORT:-6380}
DIR=${FLIGHTS_REDIS_DIR:-/tmp/flights-redis}

password() {
  SECRET="$DIR/redis.password"
  if [ -n "${FLIGHTS_REDIS_PASSWORD:-}" ]; then
    PASSWORD=$FLIGHTS_REDIS_PASSWORD
  elif [ -s "$SECRET" ]; then
    PASSWORD=$(cat "$SECRET")
  else
    PASSWORD=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
    printf '%s' "$PASSWORD" > "$SECRET"
  fi
  case "$PASSWORD" in  # it goes into a URL and a configuration line unquoted
    *[!A-Za-z0-9._~-]*) state_refuse "FLIGHTS_REDIS_PASSWORD may hold only letters, digits and . _ ~ - (it goes into the broker URL)" ;;
  esac
  export REDISCLI_AUTH=$PASSWORD
}

cli() { redis-cli --no-auth-warning -h 127.0.0.1 -p "$PORT" "$@"; }
anonymous_cli() { env -u REDISCLI_AUTH redis-cli -h 127.0.0.1 -p "$PORT" "$@"; }

start() {
  if ! command -v redis-server >/dev/null; then
    [ "$(id -u)" = 0 ] || { echo "redis-server is not installed and this is not root: install the redis-server package" >&2; exit 1; }
    echo "installing Redis from the OS packages ..." >&2
    bash "$(dirname "$0")/../lib/os_packages.sh" redis-server
  fi
  private_dir "$DIR"
  password
  if [ "$(anonymous_cli ping 2>/dev/null)" = PONG ]; then
    # a server without a password (started by an older version of this script): ours, restart it with one
    OLD=$(live_pid "$DIR/redis.pid" redis-server)
    [ -n "$OLD" ] && [ "$(anonymous_cli info server | tr -d '\r' | sed -n 's/^process_id://p')" = "$OLD" ] ||
      state_refuse "a Redis server without a password, not this profile's, listens on 127.0.0.1:$PORT: stop it or set FLIGHTS_REDIS_PORT"
    anonymous_cli shutdown nosave >/dev/null 2>&1 || true
    for _ in $(seq 50); do kill -0 "$OLD" 2>/dev/null || break; sleep 0.1; done
  fi
  if [ "$(cli ping 2>/dev/null)" != PONG ]; then
    REPLY=$(cli ping 2>&1 || true)
    if [[ $REPLY == *WRONGPASS* || $REPLY == *NOAUTH* || $REPLY == *"invalid password"* ]]; then
      state_refuse "the Redis server on 127.0.0.1:$PORT refuses this profile's password ($DIR/redis.password or FLIGHTS_REDIS_PASSWORD): stop it or set FLIGHTS_REDIS_PORT"
    fi
    cat > "$DIR/redis.conf" <<CONF
bind 127.0.0.1
port $PORT
protected-mode yes
requirepass $PASSWORD
save ""
appendonly no
daemonize yes
pidfile $DIR/redis.pid
logfile $DIR/redis.log
dir $DIR
CONF
    (close_inherited_fds; exec redis-server "$DIR/redis.conf")
    for _ in $(seq 50); do [ "$(cli ping 2>/dev/null)" = PONG ] && break; sleep 0.1; done
    [ "$(cli ping 2>/dev/null)" = PONG ] || { echo "redis-server did not start: $DIR/redis.log" >&2; tail -20 "$DIR/redis.log" >&2; exit 1; }
  fi
  echo "export FLIGHTS_CELERY_BROKER=redis://:$PASSWORD@127.0.0.1:$PORT/0 FLIGHTS_CELERY_BACKEND=redis://:$PASSWORD@127.0.0.1:$PORT/1"
}

flush() {
  private_dir "$DIR"
  password
  cli flushall >/dev/null
}

stop() {
  [ -e "$DIR" ] || exit 0
  private_dir "$DIR"
  password
  cli shutdown nosave >/dev/null 2>&1 || true
}

case "${1:-start}" in
  start) start ;;
  flush) flush ;;
  stop) stop ;;
  *) echo "usage: $0 start|flush|stop" >&2; exit 2 ;;
esac
