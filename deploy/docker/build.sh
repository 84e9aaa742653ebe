#!/usr/bin/env bash
# The team profile's images, built from this repository (run from anywhere):
#
#   deploy/docker/build.sh            # flights-code, flights-serving, flights-proxy (+ PostgreSQL, Redis if needed)
#
# - BASE (build argument of every image): $FLIGHTS_IMAGE_BASE, default python:3.11-slim-bookworm,
#   the official image users expect. Where it cannot be pulled (no registry reachable, as in CI
#   here), the base is made from Debian's packages instead (deploy/docker/base.sh) and said so.
# - PostgreSQL and Redis: the official images postgres:15-bookworm and redis:7-bookworm when they
#   can be pulled; else built from the same base with Debian's packages (same interface).
# - Tag: $FLIGHTS_IMAGE_TAG (default `team`). Prints each image's size and build time, and the
#   `export` line of the image names for deploy/team/compose.yaml.
# Builds reach PyPI and Debian through the host's network (`--network host`); the images hold no
# secret and no data (.dockerignore; a test checks the layers).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
TAG=${FLIGHTS_IMAGE_TAG:-team}
BASE=${FLIGHTS_IMAGE_BASE:-python:3.11-slim-bookworm}
cd "$REPO"

available() {  # image: present, or pulled now
  docker image inspect "$1" > /dev/null 2>&1 || docker pull -q "$1" > /dev/null 2>&1
}

build() {  # name dockerfile base
  local start=$SECONDS
  docker build -q --network host -f "deploy/docker/$2" --build-arg "BASE=$3" -t "$1" . > /dev/null 2> "/tmp/flights-build-$$.log" \
    || { cat "/tmp/flights-build-$$.log" >&2; rm -f "/tmp/flights-build-$$.log"; exit 1; }
  rm -f "/tmp/flights-build-$$.log"
  printf '  %-28s %8s  built in %3d s\n' "$1" "$(docker image inspect -f '{{.Size}}' "$1" | awk '{printf "%.0f MB", $1/1e6}')" $((SECONDS - start)) >&2
}

if ! available "$BASE"; then
  echo "the base image $BASE cannot be pulled here: building one from Debian's packages (deploy/docker/base.sh)" >&2
  start=$SECONDS
  BASE=$("$REPO/deploy/docker/base.sh")
  echo "  $BASE in $((SECONDS - start)) s" >&2
fi
echo "images on $BASE:" >&2
build "flights-code:$TAG" code.Dockerfile "$BASE"
build "flights-serving:$TAG" serving.Dockerfile "$BASE"
build "flights-proxy:$TAG" proxy.Dockerfile "$BASE"
POSTGRES_IMAGE=${FLIGHTS_POSTGRES_IMAGE:-postgres:15-bookworm}
REDIS_IMAGE=${FLIGHTS_REDIS_IMAGE:-redis:7-bookworm}
if ! available "$POSTGRES_IMAGE"; then
  POSTGRES_IMAGE="flights-postgres:$TAG"
  build "$POSTGRES_IMAGE" postgres.Dockerfile "$BASE"
fi
if ! available "$REDIS_IMAGE"; then
  REDIS_IMAGE="flights-redis:$TAG"
  build "$REDIS_IMAGE" redis.Dockerfile "$BASE"
fi
echo "export FLIGHTS_CODE_IMAGE=flights-code:$TAG FLIGHTS_SERVING_IMAGE=flights-serving:$TAG FLIGHTS_PROXY_IMAGE=flights-proxy:$TAG FLIGHTS_POSTGRES_IMAGE=$POSTGRES_IMAGE FLIGHTS_REDIS_IMAGE=$REDIS_IMAGE"
