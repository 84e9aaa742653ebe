"""Settings of the Celery workers of the scale-out profile (imported by `dagster_celery.app`
when this folder is on PYTHONPATH). The broker comes from the environment, never from a file."""

import os

broker_url = os.environ["FLIGHTS_CELERY_BROKER"]
result_backend = os.environ.get("FLIGHTS_CELERY_BACKEND") or broker_url
worker_hijack_root_logger = False
broker_connection_retry_on_startup = True

# A worker that dies in the middle of a step (SIGKILL, a lost host) must not leave its run waiting
# forever (dagster-celery waits for every task's result): a task is acknowledged only when it has
# finished (`task_acks_late`), so Redis hands an unfinished one to another worker once its
# visibility timeout has passed (the live workers look for such tasks every 5 s). The step then
# runs again from the start: every step writes its partitions in one transaction, and
# `candidate_model` returns the version already registered from its MLflow run, so a rerun leaves
# no half-written day and no second version. The timeout must exceed the longest step (a year's
# feature build is well under a minute here): a step still running past it would run twice.
task_acks_late = True
task_reject_on_worker_lost = True
broker_transport_options = {
    "visibility_timeout": int(os.environ.get("FLIGHTS_CELERY_VISIBILITY_TIMEOUT", "600")),
    "unacked_restore_interval": 5,
    "unacked_restore_throttle": 1,
}
