"""How a run reaches the outside and where its steps execute: the resources every step gets and
the executor, both read from the settings when Dagster loads the code location."""

from dagster import in_process_executor, multiprocess_executor

from assets.asset_factory import StoresOnlyIOManager
from resources.dagster_resources import ModelRegistryResource, WarehouseResource
from resources.data_quality import GreatExpectations
from resources.monitoring_workspace import MonitoringWorkspace
from resources.settings import Settings
from resources.source import FlightSource


def default_resources() -> dict:
    """The doors to the outside, each configured from the settings when a step runs."""
    return {
        "source": FlightSource(),
        "warehouse": WarehouseResource(),
        "great_expectations": GreatExpectations(),
        "model_registry": ModelRegistryResource(),
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
