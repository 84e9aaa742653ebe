"""The Definitions load, and the jobs, schedule and partitions behave as documented."""

from dagster import (
    AssetKey,
    AssetMaterialization,
    BackfillPolicy,
    DagsterInstance,
    RunRequest,
    SkipReason,
    build_schedule_context,
)

from assets.asset_factory import daily_partitions
from pipelines.definitions import defs
from pipelines.orchestration.schedules import daily_ingestion_schedule, periodic_retrain_schedule

DATA_ASSETS = ["raw_flights", "raw_weather", "validated_flights", "validated_weather", "flight_features"]


def test_every_data_asset_is_daily_single_run_backfill_described_and_grouped():
    graph = defs.resolve_asset_graph()
    for name in DATA_ASSETS:
        node = graph.get(AssetKey(name))
        assert node.partitions_def == daily_partitions
        assert node.backfill_policy == BackfillPolicy.single_run()
        assert node.description and node.group_name in {"ingestion", "validation", "features"}
    assert len(daily_partitions.get_partition_keys()) == 365
    blocking = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys if graph.get(k).blocking}
    assert ("raw_flights", "batch_is_readable_and_complete") in blocking
    assert ("validated_flights", "bad_row_share_within_limit") in blocking


def test_ingest_job_covers_the_data_half():
    job = defs.resolve_job_def("ingest_job")
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} == set(DATA_ASSETS)


def test_sensors_and_schedules_start_as_documented():
    from dagster import DefaultScheduleStatus, DefaultSensorStatus

    sensors = {s.name: s.default_status for s in defs.sensors}
    assert sensors == {
        "drift_sensor": DefaultSensorStatus.RUNNING, "performance_sensor": DefaultSensorStatus.RUNNING,
        "monitor_sensor": DefaultSensorStatus.RUNNING, "landing_sensor": DefaultSensorStatus.RUNNING,
        "replay_clock_sensor": DefaultSensorStatus.STOPPED,
        # on: each acts only when there is something to decide on or to tell (an alert channel set)
        "challenger_sensor": DefaultSensorStatus.RUNNING, "rollback_sensor": DefaultSensorStatus.RUNNING,
        "run_failure_alert": DefaultSensorStatus.RUNNING,
        "retrain_started_alert": DefaultSensorStatus.RUNNING, "verdict_alert": DefaultSensorStatus.RUNNING,
    }
    assert {s.name: s.default_status for s in defs.schedules} == {
        "daily_ingestion_schedule": DefaultScheduleStatus.STOPPED,
        "periodic_retrain_schedule": DefaultScheduleStatus.STOPPED,
        "data_retention_schedule": DefaultScheduleStatus.STOPPED,  # deleting data is the team's decision
    }
    monitor = defs.resolve_job_def("monitor_job")
    assert {k.to_user_string() for k in monitor.asset_layer.executable_asset_keys} == {
        "predictions", "drift_report", "performance_report"}
    # a replayed day in one run: ingest_job's assets and monitor_job's, nothing of the retrain or the deployment
    day = {k.to_user_string() for k in defs.resolve_job_def("day_job").asset_layer.executable_asset_keys}
    ingest = {k.to_user_string() for k in defs.resolve_job_def("ingest_job").asset_layer.executable_asset_keys}
    assert day == ingest | {"predictions", "drift_report", "performance_report"} and "flight_features" in ingest


def test_periodic_retrain_follows_the_replay_clock(tmp_path):
    from dagster import DagsterRunStatus

    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    instance = DagsterInstance.from_config(str(tmp_path))
    assert isinstance(periodic_retrain_schedule(build_schedule_context(instance=instance)), SkipReason)  # no data
    for day in ("2013-03-01", "2013-03-02"):
        instance.report_runless_asset_event(AssetMaterialization("flight_features", partition=day))
    request = periodic_retrain_schedule(build_schedule_context(instance=instance))
    assert request.tags["retrain.as_of"] == "2013-03-02" and request.job_name == "retrain_job"
    instance.create_run_for_job(defs.resolve_job_def("retrain_job"), tags=request.tags, status=DagsterRunStatus.SUCCESS)
    assert isinstance(periodic_retrain_schedule(build_schedule_context(instance=instance)), SkipReason)


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


def test_the_ui_reads_as_the_lifecycle_every_asset_and_check_described():
    graph = defs.resolve_asset_graph()
    groups = {graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert groups == {"ingestion", "validation", "features", "training", "evaluation", "deployment", "scoring",
                      "monitoring"}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description and len(node.description) > 40, key
        assert node.owners == ["team:ml-platform"] and node.tags["stage"] == node.group_name, key
    for check in graph.asset_check_keys:
        assert graph.get(check).description, check


def test_the_retrain_job_runs_training_evaluation_and_deployment():
    job = defs.resolve_job_def("retrain_job")
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} == {
        "training_set", "candidate_model", "model_evaluation", "champion_model"}


def test_every_store_touching_asset_retries_and_steps_hand_over_no_values():
    """Shared settings applied once: every asset has the store retry policy; the I/O manager is
    the one that refuses pickles."""
    from assets.asset_factory import StoresOnlyIOManager, store_retry_policy

    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        assets_def = defs.get_assets_def(key)
        assert assets_def.op.retry_policy == store_retry_policy(), key
    assert isinstance(defs.resources["io_manager"], StoresOnlyIOManager)


def test_building_the_definitions_warns_nothing():
    """No Beta/preview warning reaches a user from our own definitions (they are filtered where
    the definitions are built, not globally)."""
    import warnings

    from dagster import BetaWarning, PreviewWarning

    from pipelines.definitions import build_definitions

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        built = build_definitions()
        built.resolve_all_job_defs()
        assert built.get_repository_def().sensor_defs
    assert [str(w.message) for w in caught if issubclass(w.category, (BetaWarning, PreviewWarning))] == []


def test_every_alias_move_claims_the_one_slot_of_the_same_pool():
    """champion_model, approve, reject and rollback never interleave their alias moves: each step
    is in the pool `registry_aliases`, and every profile's instance gives a pool one slot."""
    from pathlib import Path

    from assets.asset_factory import ALIAS_MOVES_POOL

    graph = defs.resolve_asset_graph()
    assert graph.get(AssetKey("champion_model")).pools == {ALIAS_MOVES_POOL}
    for job_name in ("approve_challenger_job", "reject_challenger_job", "rollback_job"):
        assert {node.definition.pool for node in defs.resolve_job_def(job_name).graph.node_dict.values()} == {ALIAS_MOVES_POOL}
    # the other steps claim no pool: they run as before
    assert {k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).pools} == {"champion_model"}
    import yaml

    repo = Path(__file__).resolve().parents[2]
    config = DagsterInstance.from_config(str(repo / "dagster_home")).get_concurrency_config()
    assert config.pool_config.default_pool_limit == 1 and config.run_queue_config.max_concurrent_runs == 2
    section = lambda home: yaml.safe_load((repo / home / "dagster.yaml").read_text())["concurrency"]
    # the PostgreSQL profiles (whose storage needs a server to load) have the same section
    assert section("deploy/postgres") == section("deploy/team") == section("dagster_home")
