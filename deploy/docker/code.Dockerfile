# The code image: the code location server, the daemon, the webservers and the step workers all run
# it, with different commands (deploy/team/compose.yaml; the Helm values in deploy/kubernetes use it
# the same way). Built by deploy/docker/build.sh from the repository's root:
#   docker build -f deploy/docker/code.Dockerfile --build-arg BASE=python:3.11-slim-bookworm .
# It installs deploy/docker/code.lock (requirements.lock without the test tools), runs as the
# unprivileged user `flights`, and holds no secret and no data: the services' addresses come from
# the environment, their credentials from files mounted at /run/secrets (deploy/docker/entrypoint.sh).
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}
ARG UV_VERSION=0.13.9
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --quiet --no-cache-dir --disable-pip-version-check "uv==${UV_VERSION}"
COPY deploy/docker/code.lock /opt/app/deploy/docker/code.lock
RUN /opt/venv/bin/uv pip sync --quiet --system-certs --compile-bytecode --no-cache --python /opt/venv/bin/python /opt/app/deploy/docker/code.lock
COPY . /opt/app
RUN /opt/venv/bin/uv pip install --quiet --system-certs --no-deps --no-cache --compile-bytecode --python /opt/venv/bin/python -e /opt/app \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/flights --create-home --shell /usr/sbin/nologin flights \
 && install -d -o flights -g flights /var/lib/flights/mlflow /var/lib/flights/evidently \
 && mkdir -p /opt/dagster/home && cp /opt/app/deploy/team/dagster.yaml /opt/dagster/home/dagster.yaml
ENV PATH=/opt/venv/bin:/usr/local/bin:/usr/bin:/bin \
    DAGSTER_HOME=/opt/dagster/home FLIGHTS_DATA_DIR=/var/lib/flights/data \
    MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=1 GX_ANALYTICS_ENABLED=False PYTHONUNBUFFERED=1
WORKDIR /opt/app
USER flights
ENTRYPOINT ["/opt/app/deploy/docker/entrypoint.sh"]
