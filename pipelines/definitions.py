"""The Definitions of the code location (workspace.yaml and `dagster ... -m pipelines.definitions`).

Imports stay light: heavy libraries (Great Expectations, scikit-learn, MLflow, Evidently) load
only inside the steps that use them, so the CLI and the UI start quickly.
"""

import os

from dagster import Definitions, in_process_executor, load_assets_from_modules

from assets import deployment, evaluation, features, ingestion, scoring, training, validation
from assets.deployment import rollback_job
from pipelines.jobs import ingest_job, retrain_job, score_job
from pipelines.schedules import daily_ingestion_schedule
from resources.data_quality import GreatExpectations
from resources.registry import ModelRegistry
from resources.settings import default_landing_dir
from resources.source import FlightSource
from resources.warehouse import warehouse_from_env

defs = Definitions(
    assets=load_assets_from_modules([ingestion, validation, features, training, evaluation, deployment, scoring]),
    jobs=[ingest_job, retrain_job, score_job, rollback_job],
    schedules=[daily_ingestion_schedule],
    resources={
        "source": FlightSource(
            mode=os.environ.get("FLIGHTS_SOURCE", "replay"), landing_dir=default_landing_dir()
        ),
        "warehouse": warehouse_from_env(),
        "great_expectations": GreatExpectations(),
        "model_registry": ModelRegistry(),
    },
    # Steps run in the launching process: each step of the multiprocess executor re-imports the
    # code (seconds per step), while these steps are vectorized pandas on two cores.
    executor=in_process_executor,
)
