"""Settings of the Celery workers of the scale-out profile (imported by `dagster_celery.app`
when this folder is on PYTHONPATH). The broker comes from the environment, never from a file."""

import os

broker_url = os.environ["FLIGHTS_CELERY_BROKER"]
result_backend = os.environ.get("FLIGHTS_CELERY_BACKEND") or broker_url
worker_hijack_root_logger = False
broker_connection_retry_on_startup = True
