#!/usr/bin/env bash
# Docker for the team profile, when this machine lacks it: Debian's `docker.io` and
# `docker-compose` (1.29), and `debootstrap` for the local base image (deploy/docker/base.sh).
# Then dockerd is started if nothing answers on its socket. As root only; anyone else gets told
# which packages to install. Prints nothing on success (its output is for errors).
set -euo pipefail
need=()
[ -x /usr/bin/docker ] || need+=(docker.io)
command -v docker-compose > /dev/null || need+=(docker-compose)
command -v debootstrap > /dev/null || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "missing: ${need[*]} (install these Debian packages, or Docker and docker-compose your own way)" >&2; exit 1; }
  bash "$(dirname "$0")/../lib/os_packages.sh" "${need[@]}"
fi
if ! docker info > /dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || { echo "dockerd is not running and this is not root: start Docker" >&2; exit 1; }
  (nohup dockerd > /var/log/flights-dockerd.log 2>&1 &)
  for _ in $(seq 60); do docker info > /dev/null 2>&1 && exit 0; sleep 0.5; done
  echo "dockerd did not start: /var/log/flights-dockerd.log" >&2; tail -20 /var/log/flights-dockerd.log >&2; exit 1
fi
