"""The cost of Dagster's own bookkeeping for a full-year backfill, with no work in the assets.

Same graph shape as the data half of the pipeline (5 daily-partitioned assets, 8 per-day
checks, one run for the whole range through `BackfillPolicy.single_run()`), same per-day
records (one materialization with metadata and one evaluation per check, per day), but every
asset body is empty. Its wall time is the floor under the real backfill on this machine:
the real pipeline cannot be faster than the events it must record.

    python bench/dagster_event_floor.py       # run by bench/bench_data_foundation.py
"""

from dagster import (
    AssetCheckEvaluation,
    AssetCheckKey,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetSpec,
    BackfillPolicy,
    DailyPartitionsDefinition,
    Definitions,
    Output,
    in_process_executor,
    multi_asset,
)

DAYS = DailyPartitionsDefinition(start_date="2013-01-01", end_date="2014-01-01")

# asset -> (upstream assets, its per-day checks); mirrors pipelines.definitions
SHAPE = {
    "raw_flights": ((), ("batch_is_readable_and_complete",)),
    "raw_weather": ((), ("batch_is_readable_and_complete",)),
    "validated_flights": (("raw_flights",), ("bad_row_share_within_limit", "rows_in_equal_valid_plus_quarantined", "null_limits")),
    "validated_weather": (("raw_weather",), ("bad_row_share_within_limit", "rows_in_equal_valid_plus_quarantined",
                                             "temperature_continuous")),
    "flight_features": (("validated_flights", "validated_weather"), ("weather_coverage", "arrivals_reported")),
}


def _build(name, deps, checks):
    @multi_asset(
        name=name,
        specs=[AssetSpec(name, deps=list(deps), partitions_def=DAYS)],
        check_specs=[AssetCheckSpec(c, asset=name) for c in checks],
        backfill_policy=BackfillPolicy.single_run(),
    )
    def _noop(context: AssetExecutionContext):
        days = context.partition_keys
        for day in days:
            context.add_asset_metadata({"rows_in": 0, "data_version": day}, partition_key=day)
        yield Output(None, output_name=name)
        for check in checks:
            key = AssetCheckKey(context.assets_def.key, check)
            for day in days:
                yield AssetCheckEvaluation(asset_key=key.asset_key, check_name=check, passed=True,
                                           metadata={"rows": 0}, partition=day)
            yield Output(None, output_name=context.assets_def.get_output_name_for_asset_check_key(key))

    return _noop


defs = Definitions(
    assets=[_build(name, deps, checks) for name, (deps, checks) in SHAPE.items()],
    executor=in_process_executor,
)
