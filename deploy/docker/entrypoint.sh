#!/bin/sh
# Every project container starts here: the credentials a service needs are files mounted at
# /run/secrets (compose `secrets:`, Kubernetes Secrets as volumes), never environment variables of
# the container (those show in `docker inspect`) nor arguments (those show in `ps`). Each file
# /run/secrets/<NAME>.env holds `NAME=value` lines; they are exported into this process only, then
# the command runs in its place.
set -eu
for file in /run/secrets/*.env; do
  [ -r "$file" ] || continue
  while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in ''|'#'*) continue ;; esac
    export "$line"
  done < "$file"
done
exec "$@"
