# The authenticating proxy in front of the read-write Dagster UI: nginx from Debian's packages with
# HTTP basic authentication over an accounts file (a mounted secret, /run/secrets/proxy.htpasswd),
# run as an unprivileged user (deploy/docker/proxy.conf). No account is in the image.
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light > /dev/null \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
COPY deploy/docker/proxy.conf /etc/nginx/flights-proxy.conf
USER www-data
EXPOSE 8080
CMD ["nginx", "-c", "/etc/nginx/flights-proxy.conf"]
