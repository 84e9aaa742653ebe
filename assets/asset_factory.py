"""The Dagster side shared by every stage: the day partitions, one decorator that applies the
shared asset settings, the I/O manager that keeps steps from handing over pickles, the per-day
metadata and check results of a step that handles many days at once, and table metadata (rows
as a Dagster table, a warehouse table as the standard `dagster/column_schema`)."""

from __future__ import annotations

import functools
import inspect
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence

from dagster import (
    AssetCheckEvaluation,
    AssetCheckKey,
    AssetCheckSeverity,
    AssetExecutionContext,
    BackfillPolicy,
    Backoff,
    BetaWarning,
    ConfigurableIOManager,
    DailyPartitionsDefinition,
    Failure,
    Jitter,
    MetadataValue,
    Output,
    RetryPolicy,
    TableColumn,
    TableColumnConstraints,
    TableMetadataValue,
    TableRecord,
    TableSchema,
    asset,
)

from assets.common import PARTITION_END_EXCLUSIVE, PARTITION_START
from resources.errors import DataProblem, refused_value
from resources.settings import settings

daily_partitions = DailyPartitionsDefinition(start_date=PARTITION_START, end_date=PARTITION_END_EXCLUSIVE)
OWNERS = ["team:ml-platform"]


class DataFailure(Failure):
    """A failure that retrying cannot fix: the step fails at once, whatever its retry policy."""

    def __init__(self, description: str | None = None, metadata=None):
        super().__init__(description=description, metadata=metadata, allow_retries=False)


def store_retry_policy() -> RetryPolicy:
    """A store briefly unreachable (a restarting server, a locked SQLite file) is retried with
    exponential backoff: FLIGHTS_STORE_RETRIES retries, waiting FLIGHTS_STORE_RETRY_DELAY s, then
    twice that, ... What retrying cannot fix (`DataProblem`, `DataFailure`) fails at once. Every
    retried step writes in one transaction, or moves aliases so that repeating it changes
    nothing (`ModelRegistry.promote`)."""
    s = settings()
    return RetryPolicy(max_retries=s.store_retries, delay=s.store_retry_delay,
                       backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)


def _unretriable(exc: Exception, args, kwargs) -> DataFailure | None:
    """A `DataProblem`, or a value the warehouse refuses (`refused_value`: a driver's DataError),
    as a `DataFailure`; None for what a retry may fix."""
    if isinstance(exc, DataProblem):
        return DataFailure(str(exc))
    context = kwargs.get("context", args[0] if args else None)
    asset_context = isinstance(context, AssetExecutionContext)
    days = list(context.partition_keys) if asset_context and (context.has_partition_key or context.has_partition_key_range) else []
    where = f"partition {days[0]}" if len(days) == 1 else f"partitions {days[0]} … {days[-1]}" if days else ""
    refused = refused_value(exc, where)
    if refused is None:
        return None
    name = context.asset_key.to_user_string() if asset_context else "the step"
    return DataFailure(f"{name}: {refused}")


def _failing_data_problems_at_once(fn):
    """The asset body, with a `DataProblem` from the logic, or a value the warehouse refuses,
    raised as a `DataFailure`."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def generator(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as exc:
                if (failure := _unretriable(exc, args, kwargs)) is None:
                    raise
                raise failure from exc
        return generator

    @functools.wraps(fn)
    def function(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if (failure := _unretriable(exc, args, kwargs)) is None:
                raise
            raise failure from exc
    return function


# Every step that moves a registry alias (champion_model, approve, reject, rollback) claims the one
# slot of this pool (dagster.yaml: `concurrency: pools: default_limit: 1`), so two never interleave
# their moves, whichever jobs they belong to.
ALIAS_MOVES_POOL = "registry_aliases"


def lifecycle_asset(stage: str, *, daily: bool = False, writes=None, **kwargs):
    """`@asset` with what every asset of the pipeline shares: its group and `stage` tag are the
    lifecycle stage, the team owns it, a store outage is retried; a daily asset is partitioned
    by day and a backfill of many days is one run (`BackfillPolicy.single_run()`), each asset
    handling the whole range at once (one GX validation, one transaction). `writes`: the
    warehouse table it writes, whose columns are the asset's standard `dagster/column_schema`,
    in its definition (the schema is static: carried by every day's materialization event it
    cost a year's backfill about 10 s of event serialization)."""
    shared = dict(group_name=stage, tags={"stage": stage}, owners=OWNERS, retry_policy=store_retry_policy())
    if writes is not None:
        kwargs["metadata"] = {"dagster/column_schema": column_schema(writes), **kwargs.get("metadata", {})}
    if daily:
        shared.update(partitions_def=daily_partitions, backfill_policy=BackfillPolicy.single_run())

    def decorate(fn):
        with warnings.catch_warnings():  # `backfill_policy` is beta in Dagster 1.13: known, and chosen
            warnings.filterwarnings("ignore", category=BetaWarning)
            return asset(**shared, **kwargs)(_failing_data_problems_at_once(fn))

    return decorate


class StoresOnlyIOManager(ConfigurableIOManager):
    """Steps hand over through the warehouse and the MLflow registry, never through files of the
    run's host: an asset that returned a value to pickle, or an input that expected one, fails
    here instead of silently writing to DAGSTER_HOME/storage."""

    def handle_output(self, context, obj) -> None:
        if obj is not None:
            raise TypeError(f"{context.asset_key.to_user_string()} returned a {type(obj).__name__}: steps hand over "
                            "through the warehouse or the registry, return MaterializeResult")

    def load_input(self, context):
        raise TypeError(f"{context.asset_key.to_user_string()}: inputs are read from the warehouse or the registry, "
                        "declare the upstream asset in `deps`")


def _cell(value, kind: str):
    """A value a Dagster table record holds (str, int, float, bool or None): numpy scalars as
    Python ones, a missing number (NaN, infinite, "") as None (the UI parses each record as JSON,
    which has no NaN), anything else as its text."""
    if hasattr(value, "item") and not isinstance(value, str | bytes):  # numpy / pandas scalars
        value = value.item()
    if value is None or type(value).__name__ in ("NAType", "NaTType") or (isinstance(value, float) and not math.isfinite(value)):
        return None
    if kind in ("int", "float") and value == "":
        return None
    if isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _kind(values: list) -> str:
    """The column type of these (plain) values: bool, int, float, or else string."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return "bool"
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "int"
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return "float"
    return "string"


def table_metadata(rows: Iterable[Mapping[str, object]], columns: Mapping[str, str] | Sequence[str],
                   descriptions: Mapping[str, str] | None = None) -> TableMetadataValue:
    """`rows` as a Dagster table (sortable in the UI, `.records` / `.schema` to code): these
    columns, in this order, typed as given (`{"rows": "int", ...}`: string, int, float, bool) or,
    for a list of names, as their values are; a column a row lacks is None in it."""
    rows = [dict(r) for r in rows]
    if isinstance(columns, Mapping):
        kinds = dict(columns)
    else:
        kinds = {c: _kind([_cell(r.get(c), "string") for r in rows]) for c in columns}
    descriptions = descriptions or {}
    return MetadataValue.table(
        records=[TableRecord({c: _cell(r.get(c), k) for c, k in kinds.items()}) for r in rows],
        schema=TableSchema(columns=[TableColumn(c, k, description=descriptions.get(c)) for c, k in kinds.items()]),
    )


def column_schema(table) -> TableSchema:
    """A warehouse table's columns (a SQLAlchemy `Table` of resources/schemas.py: name, SQL type,
    nullable), for the standard `dagster/column_schema` of the assets that write it."""
    return TableSchema(columns=[TableColumn(c.name, str(c.type), constraints=TableColumnConstraints(nullable=bool(c.nullable)))
                                for c in table.columns])


HISTORY_TYPES = {"rows_in": "int", "rows_valid": "int", "rows_quarantined": "int"}


def day_history_metadata(warehouse, model_registry, asset: str, written) -> dict[str, dict]:
    """Each written day's version facts for its materialization: the new version, the one it
    replaced and, for a day written before, the history of the asset's versions of that day with
    the registered model versions that use each (the registry is asked once per run, and only
    when a day already had a version; when it cannot be reached, the table's `used_by` says so)."""
    from assets.day_history import HISTORY_COLUMNS, history_rows, model_usage

    out = {day: {"version_id": vid, "supersedes": written.superseded.get(day, "none")} for day, vid in written.ids.items()}
    again = sorted(written.superseded)
    if not again:
        return out
    catalog = warehouse.versions(days=again)  # every asset: a raw version is used through what was built from it
    try:
        usage, unknown = model_usage(model_registry.versions(), catalog), None
    except Exception as exc:  # the history is informative: a registry outage must not fail the write
        usage, unknown = {}, f"unknown: the model registry could not be read ({type(exc).__name__})"
    for day in again:
        rows = history_rows(catalog[catalog["partition_date"] == day], usage, asset)
        if unknown:
            rows = [{**r, "used_by": unknown} for r in rows]
        out[day]["versions_of_day"] = len(rows)
        out[day]["day_history"] = table_metadata(rows, {c: HISTORY_TYPES.get(c, "string") for c in HISTORY_COLUMNS}, {
            "built_from": "the version ids it was built from", "used_by": "the registered model versions that use it "
            "(directly, or through what was built from it)"})
    return out


def add_partition_metadata(context: AssetExecutionContext, per_partition: Mapping[str, Mapping[str, object]]) -> None:
    """Attach each day's own figures to that day's materialization event."""
    for key, meta in per_partition.items():
        context.add_asset_metadata(dict(meta), partition_key=key)


def partition_check_results(
    context: AssetExecutionContext,
    check_name: str,
    per_partition: Mapping[str, tuple[bool, Mapping[str, object]]],
    severity: AssetCheckSeverity = AssetCheckSeverity.ERROR,
):
    """Yield one check evaluation per day of the run, then the check's output.

    Dagster plans a check execution per partition of a partitioned run, while an
    `AssetCheckResult` of a multi-day step is recorded without a partition; evaluations that
    name their partition complete each day's planned record (UI: the check per day).
    """
    key = AssetCheckKey(context.assets_def.key, check_name)
    spec = context.assets_def.get_spec_for_check_key(key)
    for partition, (passed, metadata) in per_partition.items():
        yield AssetCheckEvaluation(
            asset_key=key.asset_key, check_name=check_name, passed=passed, metadata=dict(metadata),
            severity=severity, blocking=spec.blocking, partition=partition,
        )
    yield Output(None, output_name=context.assets_def.get_output_name_for_asset_check_key(key))


def latest_materialization(context: AssetExecutionContext, asset_key: str):
    """The upstream asset's materialization this step builds on: the one of this run, or else
    the newest (a step re-executed alone builds on the last good upstream)."""
    from dagster import AssetKey, AssetRecordsFilter

    records = context.instance.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey(asset_key)), limit=20).records
    if not records:
        raise DataFailure(f"{asset_key} has never been materialized: materialize it (or run retrain_job) first")
    mine = [r for r in records if r.run_id == context.run_id]
    return (mine or records)[0].asset_materialization
