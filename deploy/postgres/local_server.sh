#!/usr/bin/env bash
# A PostgreSQL server on loopback for the PostgreSQL profile (tests, CI, a laptop).
#
#   eval "$(deploy/postgres/local_server.sh start)"   # exports FLIGHTS_POSTGRES_URL
#   deploy/postgres/local_server.sh stop
#
# Installs the OS package if it is missing (apt, as root), creates a cluster in $FLIGHTS_PGDATA
# (default /tmp/flights-pgdata) listening on 127.0.0.1:$FLIGHTS_PGPORT (default 54329) only,
# with scram-sha-256 passwords; the role `pipeline` gets $FLIGHTS_PGPASSWORD (a random one is
# generated when unset; it is printed only inside the export line, never written to the repo).
set -euo pipefail
PGDATA_DIR=${FLIGHTS_PGDATA:-/tmp/flights-pgdata}
PORT=${FLIGHTS_PGPORT:-54329}
ROLE=pipeline

bindir() {
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && { echo "$d"; return; }; done
  return 1
}

as_owner() {  # PostgreSQL refuses to run as root: use the `postgres` account then
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  if ! BIN=$(bindir); then
    [ "$(id -u)" = 0 ] || { echo "PostgreSQL is not installed and this is not root: install the postgresql package" >&2; exit 1; }
    echo "installing PostgreSQL from the OS packages ..." >&2
    ({ apt-get update -qq || echo 'apt-get update failed: using the package lists already present' >&2; } && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) >&2
    BIN=$(bindir)
  fi
  if [ ! -s "$PGDATA_DIR/PG_VERSION" ]; then
    mkdir -p "$PGDATA_DIR"
    [ "$(id -u)" = 0 ] && chown postgres "$PGDATA_DIR"
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
    (umask 077; printf '%s' "$PASSWORD" > "$SECRET")
  fi
  if ! as_owner "$BIN/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1; then
    as_owner "$BIN/pg_ctl" -D "$PGDATA_DIR" -l "$PGDATA_DIR/server.log" -w \
      -o "-c listen_addresses=127.0.0.1 -p $PORT -k $PGDATA_DIR -c fsync=off -c max_connections=200" start >/dev/null
  fi
  # the role and the three databases of the profile (idempotent); the password goes in on stdin
  as_owner "$BIN/psql" -q -h "$PGDATA_DIR" -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -v pw="$PASSWORD" >/dev/null <<'SQL'
SELECT format('CREATE ROLE pipeline LOGIN CREATEDB PASSWORD %L', :'pw') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pipeline') \gexec
SELECT format('ALTER ROLE pipeline PASSWORD %L', :'pw') \gexec
SELECT 'CREATE DATABASE ' || d || ' OWNER pipeline' FROM unnest(ARRAY['dagster','warehouse','mlflow']) AS d
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = d) \gexec
SQL
  echo "export FLIGHTS_POSTGRES_URL=postgresql+psycopg2://$ROLE:$PASSWORD@127.0.0.1:$PORT"
}

stop() {
  BIN=$(bindir) || exit 0
  as_owner "$BIN/pg_ctl" -D "$PGDATA_DIR" -m fast stop >/dev/null 2>&1 || true
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
