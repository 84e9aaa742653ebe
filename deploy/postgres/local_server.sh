#!/usr/bin/env bash
# A PostgreSQL server on loopback for the PostgreSQL profile (tests, CI, a laptop).
#
#   eval "$(deploy/postgres/local_server.sh start)"   # exports FLIGHTS_POSTGRES_URL
#   deploy/postgres/local_server.sh stop
#
# Installs the OS package if it is missing (apt, as root), creates a cluster in $FLIGHTS_PGDATA
# (default /tmp/flights-pgdata; a folder of the server's account, mode 0700, else refused: see
# deploy/lib/state.sh) listening on 127.0.0.1:$FLIGHTS_PGPORT (default 54329) only, with
# scram-sha-256 passwords; the role `pipeline` gets $FLIGHTS_PGPASSWORD (a random one is generated
# when unset; it is printed only inside the export line, never written to the repo, and reaches
# psql on its standard input, never on a command line).
#
# The server is durable (fsync on): it holds the Dagster instance, the warehouse and the registry.
# FLIGHTS_POSTGRES_UNSAFE_FAST=1 (set by the test targets only: `make test-postgres`, the team
# tests) turns fsync off for speed, on the whole server, until the next start without it; a host
# crash meanwhile can corrupt the cluster.
set -euo pipefail
# shellcheck source=../lib/state.sh
source "$(dirname "$0")/../lib/state.sh"
PGDATA_DIR=${FLIGHTS_PGDATA:-/tmp/flights-pgdata}
PORT=${FLIGHTS_PGPORT:-54329}
ROLE=pipeline
case "${FLIGHTS_POSTGRES_UNSAFE_FAST:-0}" in
  0 | '') FSYNC=on ;;
  1) FSYNC=off ;;
  *) state_refuse "FLIGHTS_POSTGRES_UNSAFE_FAST must be 1 (fsync off: tests only) or 0/unset (durable), not '$FLIGHTS_POSTGRES_UNSAFE_FAST'" ;;
esac

bindir() {
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && { echo "$d"; return; }; done
  return 1
}

as_owner() {  # PostgreSQL refuses to run as root: use the `postgres` account then
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

account() { if [ "$(id -u)" = 0 ]; then echo postgres; else id -un; fi; }

start() {
  if ! BIN=$(bindir); then
    [ "$(id -u)" = 0 ] || { echo "PostgreSQL is not installed and this is not root: install the postgresql package" >&2; exit 1; }
    echo "installing PostgreSQL from the OS packages ..." >&2
    bash "$(dirname "$0")/../lib/os_packages.sh" postgresql
    BIN=$(bindir)
  fi
  private_dir "$PGDATA_DIR" "$(account)"
  if [ ! -s "$PGDATA_DIR/PG_VERSION" ]; then
    as_owner "$BIN/initdb" -D "$PGDATA_DIR" -U postgres --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  fi
  # the role's password: FLIGHTS_PGPASSWORD, else the one generated at the first start (kept
  # beside the cluster, readable by its owner only), so a second `start` does not lock out the first
  SECRET="$PGDATA_DIR/pipeline.password"
  if [ -n "${FLIGHTS_PGPASSWORD:-}" ]; then
    PASSWORD=$FLIGHTS_PGPASSWORD
  elif [ -s "$SECRET" ]; then
    PASSWORD=$(cat "$SECRET")
  else
    PASSWORD=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
    printf '%s' "$PASSWORD" > "$SECRET"
  fi
  if ! as_owner "$BIN/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1; then
    (close_inherited_fds; as_owner "$BIN/pg_ctl" -D "$PGDATA_DIR" -l "$PGDATA_DIR/server.log" -w \
      -o "-c listen_addresses=127.0.0.1 -p $PORT -k $PGDATA_DIR -c max_connections=200" start >/dev/null)
  fi
  # durability (fsync may change on a running server: a reload applies it), the role and the three
  # databases of the profile (idempotent); the password goes in on stdin, as a psql variable
  local quoted=${PASSWORD//\\/\\\\}
  quoted=${quoted//\'/\'\'}
  { printf "\\\\set pw '%s'\n" "$quoted"; cat <<SQL; } | as_owner "$BIN/psql" -q -h "$PGDATA_DIR" -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 >/dev/null
ALTER SYSTEM SET fsync = $FSYNC;
SELECT pg_reload_conf();
SELECT format('CREATE ROLE pipeline LOGIN CREATEDB PASSWORD %L', :'pw') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pipeline') \\gexec
SELECT format('ALTER ROLE pipeline PASSWORD %L', :'pw') \\gexec
SELECT 'CREATE DATABASE ' || d || ' OWNER pipeline' FROM unnest(ARRAY['dagster','warehouse','mlflow']) AS d
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = d) \\gexec
SQL
  # a server started by an older version of this script has fsync=off on its command line, which
  # no reload overrides: say so (a restart applies the setting)
  for _ in $(seq 20); do  # the reload is asynchronous
    [ "$(as_owner "$BIN/psql" -XAtq -h "$PGDATA_DIR" -p "$PORT" -U postgres -d postgres -c 'SHOW fsync')" = "$FSYNC" ] && break
    sleep 0.1
  done
  [ "$(as_owner "$BIN/psql" -XAtq -h "$PGDATA_DIR" -p "$PORT" -U postgres -d postgres -c 'SHOW fsync')" = "$FSYNC" ] ||
    echo "$(basename "$0"): the running server in $PGDATA_DIR keeps fsync=$([ $FSYNC = on ] && echo off || echo on) from its command line: restart it (stop, then start) to apply fsync=$FSYNC" >&2
  echo "export FLIGHTS_POSTGRES_URL=postgresql+psycopg2://$ROLE:$PASSWORD@127.0.0.1:$PORT"
}

stop() {
  BIN=$(bindir) || exit 0
  [ -e "$PGDATA_DIR" ] || exit 0
  private_dir "$PGDATA_DIR" "$(account)"  # pg_ctl signals the pid in its postmaster.pid
  as_owner "$BIN/pg_ctl" -D "$PGDATA_DIR" -m fast stop >/dev/null 2>&1 || true
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
