#!/usr/bin/env bash
# The local base image, for machines where no image registry is reachable (CI here, an air-gapped
# site): Debian bookworm from the Debian mirror this machine's apt already uses, made by
# `debootstrap --variant=minbase` and imported with `docker import`. It holds Python 3.11 and what
# the project's images install on top (the same packages an official `python:3.11-slim-bookworm`
# has), plus this machine's CA bundle, so builds on it reach PyPI and Debian through the same
# certificates the host trusts. No secret, no data, no project file.
#
#   deploy/docker/base.sh [NAME]      # default flights-base:bookworm; prints the name
#
# Users with a registry never need it: the images' BASE build argument defaults to
# python:3.11-slim-bookworm (deploy/docker/build.sh).
set -euo pipefail
NAME=${1:-flights-base:bookworm}
if docker image inspect "$NAME" > /dev/null 2>&1; then echo "$NAME"; exit 0; fi
MIRROR=${FLIGHTS_DEBIAN_MIRROR:-$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)}
MIRROR=${MIRROR:-$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
ROOT=$(mktemp -d /tmp/flights-base.XXXXXX)
trap 'rm -rf "$ROOT"' EXIT
start=$(date +%s)
# 1. Debian's minimal system, imported as an image (debootstrap resolves no optional dependency
# well, so the packages come in step 2, with apt)
if ! docker image inspect flights-debian:bookworm > /dev/null 2>&1; then
  debootstrap --variant=minbase bookworm "$ROOT/system" "$MIRROR" > "$ROOT/debootstrap.log" 2>&1 \
    || { tail -20 "$ROOT/debootstrap.log" >&2; exit 1; }
  rm -rf "$ROOT"/system/var/cache/apt/archives/*.deb "$ROOT"/system/var/lib/apt/lists/*
  tar -C "$ROOT/system" -c . | docker import -c 'ENV LANG=C.UTF-8' -c 'CMD ["bash"]' - flights-debian:bookworm > /dev/null
  rm -rf "$ROOT/system"
fi
# 2. Python 3.11 and the host's trust store (a site's own CA included), so `pip` and `apt-get` in
# the builds on top reach their mirrors
cp /etc/ssl/certs/ca-certificates.crt "$ROOT/host-ca-certificates.crt"
cat > "$ROOT/Dockerfile" <<'DOCKERFILE'
FROM flights-debian:bookworm
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      python3.11 python3.11-venv ca-certificates libgomp1 tzdata > /dev/null \
 && ln -sf python3.11 /usr/bin/python && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
COPY host-ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
DOCKERFILE
docker build -q --network host -t "$NAME" -f "$ROOT/Dockerfile" "$ROOT" > /dev/null
echo "built $NAME in $(( $(date +%s) - start )) s" >&2
echo "$NAME"
