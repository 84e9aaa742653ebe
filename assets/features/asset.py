"""Features: one row per valid flight, known at its scheduled departure (`flight_features`).

Each day's version is built from the validated versions read; the write checks, in its
transaction, that they are still current (else `InputChanged`: nothing written, retried)."""

from dagster import AssetCheckSeverity, AssetCheckSpec, AssetExecutionContext, MaterializeResult, MetadataValue, ResourceParam

from assets.asset_factory import (
    add_partition_metadata,
    day_history_metadata,
    lifecycle_asset,
    partition_check_results,
)
from assets.common import stored_data_versions
from assets.features.logic import build_features, day_figures
from resources.day_versions import DayVersion
from resources.registry import ModelRegistry
from resources.schemas import flight_features as flight_features_table
from resources.schemas import validated_tables
from resources.settings import settings
from resources.warehouse import Warehouse
from served_model.features import FEATURE_COLUMNS

COVERAGE_CHECK = "weather_coverage"
ARRIVALS_CHECK = "arrivals_reported"


@lifecycle_asset(
    "features",
    daily=True,
    writes=flight_features_table,
    deps=["validated_flights", "validated_weather"],
    kinds={"pandas", "sql"},
    check_specs=[AssetCheckSpec(
        COVERAGE_CHECK, asset="flight_features",
        description="WARN when fewer of a day's flights than FLIGHTS_MIN_WEATHER_COVERAGE (default 90 %) have an "
        "origin weather observation of the last 3 hours (a weather source lost upstream). The day is flagged as a "
        "broken feed: no training window takes it and no retrain is started for it until a new version passes or "
        "release_day_job releases it.",
    ), AssetCheckSpec(
        ARRIVALS_CHECK, asset="flight_features",
        description="WARN when fewer of a day's departed flights than FLIGHTS_MIN_ARRIVALS_SHARE (default 90 %; in 2013 "
        "never below 95.6 %) have a known arrival: the labels are late. Flagged like weather_coverage.",
    )],
    description=(
        "One row per valid flight: features known at scheduled departure only (calendar, carrier, route, "
        "distance, origin weather at the scheduled hour, origin congestion and delays propagating before "
        "departure) and the labels (`is_late` = arrived 15+ min late), in `flight_features`. Each build of a day "
        "is a new version of it, built from the validated versions it read; the one it replaces stays readable."
    ),
)
def flight_features(context: AssetExecutionContext, warehouse: ResourceParam[Warehouse], model_registry: ResourceParam[ModelRegistry]):
    partitions = context.partition_keys
    minimum = settings().min_weather_coverage
    flights, flights_read = warehouse.read_current_versions(validated_tables["flights"], partitions)
    weather, weather_read = warehouse.read_current_versions(validated_tables["weather"], partitions)
    # what each day's version is built from: the validated versions read
    inputs = {p: [read[p] for read in (flights_read, weather_read) if p in read] for p in partitions}
    features = build_features(flights, weather)
    per_day = day_figures(features, partitions, stored_data_versions(features, flight_features_table))
    days = {p: DayVersion(d["data_version"], rows_in=d["rows"], inputs=tuple(inputs[p])) for p, d in per_day.items()}
    with warehouse.replace_partitions() as tx:
        written = tx.write_version("flight_features", days, {flight_features_table: features}, run_id=context.run_id)
        # a day validated again since the read: nothing is written, the retry builds from the new version
        tx.require_inputs("flight_features", {"validated_flights": flights_read, "validated_weather": weather_read},
                          partitions)

    history = day_history_metadata(warehouse, model_registry, "flight_features", written)
    add_partition_metadata(context, {p: {**d, "dagster/row_count": d["rows"],  # the day's rows written to flight_features
                                         "built_from": MetadataValue.text(", ".join(inputs[p]) or "none"), **history[p]}
                                     for p, d in per_day.items()})
    yield MaterializeResult(metadata={
        "rows": MetadataValue.int(len(features)),
        "feature_columns": MetadataValue.json(FEATURE_COLUMNS),
        "late_share": MetadataValue.float(float(features["is_late"].astype(float).mean()) if len(features) else 0.0),
        "cancelled": MetadataValue.int(int(features["cancelled"].sum())),
    })
    # check -> (the day's figure, its minimum, the column, what a shortfall means)
    feed_checks = {COVERAGE_CHECK: ("weather_coverage", minimum, "weather", "of the day's flights have origin weather: "
                                    "a weather source is missing"),
                   ARRIVALS_CHECK: ("arrivals_share", settings().min_arrivals_share, "arr_delay",
                                    "of the day's departed flights have an arrival: the labels are late")}
    for check, (figure, floor, column, meaning) in feed_checks.items():
        per_check = {p: (d[figure] >= floor, {figure: d[figure], "minimum": floor}) for p, d in per_day.items()}
        # a failed day is flagged as a broken feed (not trained on, no retrain for it); a passed one cleared
        warehouse.record_feed_verdicts("flight_features", check, {
            p: f"partition {p}, column {column}: only {d[figure]:.1%} {meaning} (minimum {floor:.0%})"
            for p, d in per_day.items() if not per_check[p][0]}, [p for p, (ok, _) in per_check.items() if ok],
            "WARN", context.run_id)
        yield from partition_check_results(context, check, per_check, severity=AssetCheckSeverity.WARN)
