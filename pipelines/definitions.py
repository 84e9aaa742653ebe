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
        # Steps run in the launching process: each step of the multiprocess executor re-imports the
        # code (seconds per step), while these steps are vectorized pandas on two cores.
        executor=in_process_executor,
    )


defs = build_definitions()
