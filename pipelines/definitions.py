"""The Definitions of the code location (workspace.yaml and `dagster ... -m pipelines.definitions`).

Imports stay light: heavy libraries (Great Expectations, scikit-learn, MLflow, Evidently) load
only inside the steps that use them, so the CLI, the UI and sensor ticks start quickly.
"""

import os

from dagster import Definitions, in_process_executor, load_assets_from_modules

from assets import deployment, evaluation, features, ingestion, monitoring, scoring, training, validation
from assets.deployment import rollback_job
from pipelines.jobs import ingest_job, monitor_job, retrain_job, score_job
from pipelines.schedules import daily_ingestion_schedule, periodic_retrain_schedule
from pipelines.sensors import drift_sensor, landing_sensor, monitor_sensor, performance_sensor, replay_clock_sensor
from resources.data_quality import GreatExpectations
from resources.registry import ModelRegistry
from resources.settings import default_landing_dir
from resources.source import FlightSource
from resources.warehouse import warehouse_from_env


def resources_from_env() -> dict:
    return {
        "source": FlightSource(
            mode=os.environ.get("FLIGHTS_SOURCE", "replay"), landing_dir=default_landing_dir()
        ),
        "warehouse": warehouse_from_env(),
        "great_expectations": GreatExpectations(),
        "model_registry": ModelRegistry(),
    }


def executor_from_env():
    """How steps execute (FLIGHTS_EXECUTOR):

    - `in_process` (default): in the run's process. The steps are vectorized pandas on a 2-core
      machine, and the multiprocess executor re-imports the code for every step (seconds each).
    - `celery`: each step is a task for Celery workers (`make workers`, or any host running
      `celery -A dagster_celery.app worker -Q dagster` with deploy/celery on PYTHONPATH) over the
      broker at FLIGHTS_CELERY_BROKER (results at FLIGHTS_CELERY_BACKEND, default the broker).
    - `multiprocess`: Dagster's own child process per step.
    """
    kind = os.environ.get("FLIGHTS_EXECUTOR", "in_process")
    if kind == "in_process":
        return in_process_executor
    if kind == "multiprocess":
        from dagster import multiprocess_executor

        return multiprocess_executor
    if kind == "celery":
        from dagster_celery import celery_executor

        broker = os.environ["FLIGHTS_CELERY_BROKER"]
        return celery_executor.configured(
            {"broker": broker, "backend": os.environ.get("FLIGHTS_CELERY_BACKEND") or broker}, name="celery")
    raise ValueError(f"FLIGHTS_EXECUTOR={kind!r}: expected in_process, celery or multiprocess")


def build_definitions(resources: dict | None = None) -> Definitions:
    """Everything of the code location; `resources` replaces the ones set from the environment."""
    return Definitions(
        assets=load_assets_from_modules(
            [ingestion, validation, features, training, evaluation, deployment, scoring, monitoring]
        ),
        jobs=[ingest_job, retrain_job, score_job, monitor_job, rollback_job],
        schedules=[daily_ingestion_schedule, periodic_retrain_schedule],
        sensors=[drift_sensor, performance_sensor, monitor_sensor, landing_sensor, replay_clock_sensor],
        resources=resources or resources_from_env(),
        executor=executor_from_env(),
    )


defs = build_definitions()
