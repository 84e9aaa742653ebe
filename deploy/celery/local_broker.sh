#!/usr/bin/env bash
# A Redis broker on loopback for the scale-out profile (tests, CI, a laptop).
#
#   eval "$(deploy/celery/local_broker.sh start)"   # exports FLIGHTS_CELERY_BROKER / _BACKEND
#   deploy/celery/local_broker.sh stop
#
# Installs the OS package if it is missing (apt, as root); listens on 127.0.0.1:$FLIGHTS_REDIS_PORT
# (default 6380) only, protected mode on, nothing persisted.
set -euo pipefail
PORT=${FLIGHTS_REDIS_PORT:-6380}
DIR=${FLIGHTS_REDIS_DIR:-/tmp/flights-redis}

start() {
  if ! command -v redis-server >/dev/null; then
    [ "$(id -u)" = 0 ] || { echo "redis-server is not installed and this is not root: install the redis-server package" >&2; exit 1; }
    echo "installing Redis from the OS packages ..." >&2
    ({ apt-get update -qq || echo 'apt-get update failed: using the package lists already present' >&2; } && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null) >&2
  fi
  mkdir -p "$DIR"
  if ! redis-cli -h 127.0.0.1 -p "$PORT" ping >/dev/null 2>&1; then
    redis-server --bind 127.0.0.1 --port "$PORT" --protected-mode yes --save '' --appendonly no \
      --daemonize yes --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log" --dir "$DIR"
    for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  fi
  echo "export FLIGHTS_CELERY_BROKER=redis://127.0.0.1:$PORT/0 FLIGHTS_CELERY_BACKEND=redis://127.0.0.1:$PORT/1"
}

stop() {
  redis-cli -h 127.0.0.1 -p "$PORT" shutdown nosave >/dev/null 2>&1 || true
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
