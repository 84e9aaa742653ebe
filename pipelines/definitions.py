"""The Definitions of the code location (workspace.yaml and `dagster ... -m pipelines.definitions`).

Imports stay light: heavy libraries (Great Expectations, scikit-learn, MLflow, Evidently) load
only inside the steps that use them, so the CLI, the UI and sensor ticks start quickly. The
resources carry no URL or path: each reads the settings when a step runs, so no credential is
part of the definitions the UI shows.
"""

import warnings

from dagster import BetaWarning, Definitions, in_process_executor, load_assets_from_modules, multiprocess_executor

from resources.settings import Settings, configure_process, settings

configure_process()

from assets.asset_factory import StoresOnlyIOManager  # noqa: E402
from assets.deployment import asset as deployment  # noqa: E402
from assets.deployment.jobs import approve_challenger_job, reject_challenger_job, rollback_job  # noqa: E402
from assets.evaluation import asset as evaluation  # noqa: E402
from assets.features import asset as features  # noqa: E402
from assets.ingestion import asset as ingestion  # noqa: E402
from assets.monitoring import asset as monitoring  # noqa: E402
from assets.scoring import asset as scoring  # noqa: E402
from assets.training import asset as training  # noqa: E402
from assets.validation import asset as validation  # noqa: E402
from pipelines.alerts import ALERT_SENSORS  # noqa: E402
from pipelines.jobs import ingest_job, monitor_job, retrain_job, score_job  # noqa: E402
from pipelines.retention import data_retention_job, data_retention_schedule  # noqa: E402
from pipelines.schedules import daily_ingestion_schedule, periodic_retrain_schedule  # noqa: E402
from pipelines.sensors import (  # noqa: E402
    challenger_sensor,
    drift_sensor,
    landing_sensor,
    monitor_sensor,
    performance_sensor,
    replay_clock_sensor,
)
from resources.data_quality import GreatExpectations  # noqa: E402
from resources.monitoring_workspace import MonitoringWorkspace  # noqa: E402
from resources.registry import ModelRegistry  # noqa: E402
from resources.source import FlightSource  # noqa: E402
from resources.warehouse import Warehouse  # noqa: E402

STAGES = [ingestion, validation, features, training, evaluation, deployment, scoring, monitoring]


def default_resources() -> dict:
    """The doors to the outside, each configured from the settings when a step runs."""
    return {
        "source": FlightSource(),
        "warehouse": Warehouse(),
        "great_expectations": GreatExpectations(),
        "model_registry": ModelRegistry(),
        "monitoring_workspace": MonitoringWorkspace(),
        "io_manager": StoresOnlyIOManager(),
    }


def executor_for(s: Settings):
    """How steps execute (FLIGHTS_EXECUTOR):

    - `in_process` (default): in the run's process. The steps are vectorized pandas on a 2-core
      machine, and the multiprocess executor re-imports the code for every step (seconds each).
    - `celery`: each step is a task for Celery workers (`make workers`, or any host running
      `celery -A dagster_celery.app worker -Q dagster` with deploy/celery on PYTHONPATH) over the
      broker at FLIGHTS_CELERY_BROKER (results at FLIGHTS_CELERY_BACKEND, default the broker).
    - `multiprocess`: Dagster's own child process per step.
    """
    if s.executor == "in_process":
        return in_process_executor
    if s.executor == "multiprocess":
        return multiprocess_executor
    from dagster_celery import celery_executor

    return celery_executor.configured({"broker": s.celery_broker, "backend": s.celery_backend}, name="celery")


def build_definitions(resources: dict | None = None) -> Definitions:
    """Everything of the code location; `resources` replaces some or all of the default ones.

    The repository is resolved here, once (Dagster caches it): binding the resources to the
    sensors that target op jobs (`challenger_sensor`) passes Dagster's own beta `owners`
    parameter internally, a known BetaWarning that is filtered here, where the definitions are
    built, not globally."""
    defs = Definitions(
        assets=load_assets_from_modules(STAGES),
        jobs=[ingest_job, retrain_job, score_job, monitor_job, rollback_job, approve_challenger_job,
              reject_challenger_job, data_retention_job],
        schedules=[daily_ingestion_schedule, periodic_retrain_schedule, data_retention_schedule],
        sensors=[drift_sensor, performance_sensor, monitor_sensor, landing_sensor, replay_clock_sensor, challenger_sensor,
                 *ALERT_SENSORS],
        resources={**default_resources(), **(resources or {})},
        executor=executor_for(settings()),
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=BetaWarning)
        defs.get_repository_def()
    return defs


defs = build_definitions()
