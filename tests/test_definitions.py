"""The Definitions load, and the jobs, schedule and partitions behave as documented."""

from dagster import (
    AssetKey,
    AssetMaterialization,
    DagsterInstance,
    RunRequest,
    SkipReason,
    build_schedule_context,
)

from dagster._core.definitions.backfill_policy import BackfillPolicyType

from assets.partitions import daily_partitions
from pipelines.definitions import defs
from pipelines.schedules import daily_ingestion_schedule, next_day_to_ingest

DATA_ASSETS = ["raw_flights", "raw_weather", "validated_flights", "validated_weather", "flight_features"]


def test_every_data_asset_is_daily_single_run_backfill_described_and_grouped():
    graph = defs.resolve_asset_graph()
    for name in DATA_ASSETS:
        node = graph.get(AssetKey(name))
        assert node.partitions_def == daily_partitions
        assert node.backfill_policy.policy_type == BackfillPolicyType.SINGLE_RUN
        assert node.description and node.group_name in {"ingestion", "validation", "features"}
    assert len(daily_partitions.get_partition_keys()) == 365
    blocking = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys if graph.get(k).blocking}
    assert ("raw_flights", "batch_is_readable_and_complete") in blocking
    assert ("validated_flights", "bad_row_share_within_limit") in blocking


def test_ingest_job_covers_the_data_half():
    job = defs.get_job_def("ingest_job")
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} == set(DATA_ASSETS)


def test_next_day_to_ingest():
    days = ["2013-01-01", "2013-01-02", "2013-01-03"]
    assert next_day_to_ingest(set(), days) == "2013-01-01"
    assert next_day_to_ingest({"2013-01-01"}, days) == "2013-01-02"
    assert next_day_to_ingest({"2013-01-01", "2013-01-02"}, days) == "2013-01-03"
    assert next_day_to_ingest(set(days), days) is None


def test_schedule_requests_the_day_after_the_last_built_one_with_a_run_key(tmp_path):
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    instance = DagsterInstance.from_config(str(tmp_path))
    context = build_schedule_context(instance=instance)
    first = daily_ingestion_schedule(context)
    assert isinstance(first, RunRequest) and first.partition_key == "2013-01-01"
    for day in ("2013-01-01", "2013-01-02"):
        instance.report_runless_asset_event(AssetMaterialization("flight_features", partition=day))
    nxt = daily_ingestion_schedule(build_schedule_context(instance=instance))
    assert nxt.partition_key == "2013-01-03" and nxt.run_key == "ingest-2013-01-03"
    for day in daily_partitions.get_partition_keys()[-1:]:
        instance.report_runless_asset_event(AssetMaterialization("flight_features", partition=day))
    assert isinstance(daily_ingestion_schedule(build_schedule_context(instance=instance)), SkipReason)
