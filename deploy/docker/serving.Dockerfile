# The scoring server's image: the serving app (pipelines/serving), the served model's package and
# the few modules computing a flight's features; deploy/docker/serving.lock installs no Dagster, no
# GX and no Evidently. It follows the registry's champion alias (`flights-serve --wait`) and records
# what it served in the warehouse; both reached as services, credentials from /run/secrets.
#   docker build -f deploy/docker/serving.Dockerfile --build-arg BASE=python:3.11-slim-bookworm .
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}
ARG UV_VERSION=0.13.9
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --quiet --no-cache-dir --disable-pip-version-check "uv==${UV_VERSION}"
COPY deploy/docker/serving.lock /opt/app/deploy/docker/serving.lock
RUN /opt/venv/bin/uv pip sync --quiet --system-certs --compile-bytecode --no-cache --python /opt/venv/bin/python /opt/app/deploy/docker/serving.lock
COPY pyproject.toml README.md /opt/app/
COPY served_model /opt/app/served_model
COPY resources /opt/app/resources
COPY assets /opt/app/assets
COPY pipelines /opt/app/pipelines
COPY deploy/docker/entrypoint.sh /opt/app/deploy/docker/entrypoint.sh
RUN /opt/venv/bin/uv pip install --quiet --system-certs --no-deps --no-cache --compile-bytecode --python /opt/venv/bin/python -e /opt/app \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/flights --create-home --shell /usr/sbin/nologin flights
ENV PATH=/opt/venv/bin:/usr/local/bin:/usr/bin:/bin FLIGHTS_DATA_DIR=/var/lib/flights/data \
    MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=1 PYTHONUNBUFFERED=1
WORKDIR /opt/app
USER flights
EXPOSE 5001
ENTRYPOINT ["/opt/app/deploy/docker/entrypoint.sh"]
CMD ["flights-serve", "--host", "0.0.0.0", "--port", "5001", "--wait"]
