"""Dagster's own cost of a replayed day in the daemon, with no work in the assets.

The same run per day as the pipeline's replay (`day_job`: 8 daily-partitioned assets, ingestion to
reports, with their per-day checks; one run per day through the queued run coordinator) and the
same sensor rule (`replay_clock_sensor`: the next day once no run is in flight, ticking as often as
the daemon allows), but every asset body is empty. Loaded by the daemon in
bench/bench_replay_day.py as the floor under the real replayed day.
"""

import os

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    DagsterRunStatus,
    DailyPartitionsDefinition,
    DefaultSensorStatus,
    Definitions,
    MaterializeResult,
    RunRequest,
    RunsFilter,
    SkipReason,
    asset,
    define_asset_job,
    in_process_executor,
    sensor,
)

from bench.dagster_event_floor import SHAPE as DATA_SHAPE  # noqa: E402

DAYS = DailyPartitionsDefinition(start_date="2013-01-01", end_date="2014-01-01")
FIRST, LAST = os.environ["FLOOR_FIRST_DAY"], os.environ["FLOOR_LAST_DAY"]

# asset -> (upstream assets, its checks): the data half as in bench/dagster_event_floor.py, then the
# monitoring assets of day_job (pipelines.definitions)
SHAPE = {
    **DATA_SHAPE,
    "predictions": (("flight_features",), ()),
    "drift_report": (("predictions",), ("snapshot_uploaded", "no_dataset_drift", "served_requests_current")),
    "performance_report": (("predictions", "flight_features"), ("snapshot_uploaded", "performance_not_degraded",
                                                                "served_performance_not_degraded", "champion_not_worse_than_previous")),
}


def _build(name, deps, checks):
    @asset(name=name, deps=list(deps), partitions_def=DAYS,
           check_specs=[AssetCheckSpec(c, asset=name) for c in checks])
    def _empty(context: AssetExecutionContext):
        yield MaterializeResult(metadata={"rows_in": 0}, check_results=[
            AssetCheckResult(check_name=c, passed=True) for c in checks])

    return _empty


ASSETS = [_build(name, deps, checks) for name, (deps, checks) in SHAPE.items()]
day_job = define_asset_job("day_job", selection=list(SHAPE), partitions_def=DAYS)
IN_FLIGHT = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]


@sensor(job=day_job, minimum_interval_seconds=1, default_status=DefaultSensorStatus.RUNNING)
def replay_clock_sensor(context):
    if context.instance.get_runs(RunsFilter(statuses=IN_FLIGHT), limit=1):
        return SkipReason("a run is in flight")
    done = {r.tags.get("dagster/partition") for r in context.instance.get_runs(RunsFilter(job_name="day_job"))}
    today = next((d for d in DAYS.get_partition_keys() if FIRST <= d <= LAST and d not in done), None)
    if today is None:
        return SkipReason("the replay has reached its end day")
    return RunRequest(run_key=today, partition_key=today)


defs = Definitions(assets=ASSETS, jobs=[day_job], sensors=[replay_clock_sensor], executor=in_process_executor)
