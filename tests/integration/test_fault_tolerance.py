"""A store that cannot be reached: the step is retried with backoff, then fails clearly."""

from dagster import DagsterInstance, materialize

from assets.asset_factory import store_retry_policy

DAY = "2013-05-14"


def test_unreachable_warehouse_is_retried_with_backoff_then_fails_clearly():
    from pipelines.definitions import defs
    from resources.data_quality import GreatExpectations
    from resources.registry import ModelRegistry
    from resources.source import FlightSource
    from resources.warehouse import Warehouse

    url = "postgresql+psycopg2://pipeline:s3cret@127.0.0.1:9/warehouse"  # nothing listens on port 9
    result = materialize(
        [defs.get_assets_def("raw_flights")], partition_key=DAY, instance=DagsterInstance.ephemeral(),
        resources={"source": FlightSource(mode="replay"), "warehouse": Warehouse(url=url),
                   "great_expectations": GreatExpectations(), "model_registry": ModelRegistry()},
        raise_on_error=False,
    )
    assert not result.success
    types = [e.event_type_value for e in result.all_events]
    retries = store_retry_policy().max_retries
    assert retries >= 1 and types.count("STEP_UP_FOR_RETRY") == retries and types.count("STEP_RESTARTED") == retries
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    error = failure.event_specific_data.error
    message = error.message + (error.cause.message if error.cause else "")
    assert "warehouse postgresql+psycopg2://pipeline:***@127.0.0.1:9/warehouse unreachable" in message, message
    assert "s3cret" not in message


