#!/bin/sh
# The official postgres image's start, in brief (deploy/docker/postgres.Dockerfile): an empty
# $PGDATA is initialised with $POSTGRES_USER and the password in $POSTGRES_PASSWORD_FILE (never in
# the environment, the arguments or a log), connections from other hosts need that password
# (scram-sha-256), and the SQL files of /docker-entrypoint-initdb.d run once.
set -eu
USER_NAME=${POSTGRES_USER:-postgres}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  initdb -D "$PGDATA" -U "$USER_NAME" --pwfile="$POSTGRES_PASSWORD_FILE" --auth-local=trust --auth-host=scram-sha-256 > /dev/null
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -k /tmp" -w start > /dev/null
  DB=${POSTGRES_DB:-$USER_NAME}
  [ "$DB" = postgres ] || createdb -h /tmp -U "$USER_NAME" "$DB"
  for f in /docker-entrypoint-initdb.d/*.sql; do
    [ -e "$f" ] && psql -q -v ON_ERROR_STOP=1 -h /tmp -U "$USER_NAME" -d "$DB" -f "$f"
  done
  pg_ctl -D "$PGDATA" -m fast -w stop > /dev/null
fi
[ "${1:-}" = postgres ] && shift && exec postgres -k /tmp "$@"
exec "$@"
