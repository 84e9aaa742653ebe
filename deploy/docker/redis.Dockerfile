# Redis from Debian's packages, for where the official `redis:7-bookworm` image (the team profile's
# default) cannot be pulled. Same interface as the official image: `redis-server <conf>` as the
# command, data in /data; the config with the password is a mounted secret.
ARG BASE=flights-base:bookworm
FROM ${BASE}
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server > /dev/null \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb && mkdir -p /data && chown redis:redis /data
WORKDIR /data
USER redis
EXPOSE 6379
CMD ["redis-server"]
