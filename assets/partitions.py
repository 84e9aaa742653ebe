"""The day partitions shared by every daily asset, and per-partition metadata helpers."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import pandas as pd
from dagster import AssetExecutionContext, BackfillPolicy, DailyPartitionsDefinition

from resources.settings import PARTITION_END_EXCLUSIVE, PARTITION_START

daily_partitions = DailyPartitionsDefinition(
    start_date=PARTITION_START, end_date=PARTITION_END_EXCLUSIVE
)

# A backfill of many days runs as one run, and each asset processes the whole range at once
# (one GX validation, one transaction), instead of one run per day.
single_run_backfill = BackfillPolicy.single_run()


def data_version(frame: pd.DataFrame) -> str:
    """Content hash of a frame: its columns and values in row order (not the index)."""
    return hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()[:16]


def as_stored(frame: pd.DataFrame, table) -> pd.DataFrame:
    """The frame as the warehouse gives it back: the table's columns, in its order, with its
    types (so that a data version computed before writing equals one computed after reading)."""
    from sqlalchemy import Float, Integer

    out = {}
    for column in table.columns:
        if column.name not in frame.columns:
            continue
        values = frame[column.name]
        if isinstance(column.type, Float):
            out[column.name] = pd.to_numeric(values, errors="coerce").astype("float64")
        elif isinstance(column.type, Integer):
            out[column.name] = pd.to_numeric(values, errors="coerce").astype("Int64")
        else:
            out[column.name] = values.astype(object).where(values.notna(), None)
    return pd.DataFrame(out, index=frame.index)


def data_versions_by_partition(frame: pd.DataFrame, exclude: tuple[str, ...] = ()) -> dict[str, str]:
    """`data_version` of each day's rows of a multi-day frame, hashing every row once."""
    content = frame.drop(columns=[c for c in exclude if c in frame.columns])
    return {day: data_version(part) for day, part in content.groupby("partition_date", sort=False)}


def stored_data_versions(frame: pd.DataFrame, table) -> dict[str, str]:
    """Data version of each day as `table` stores the rows: the same before writing and after
    reading back (`flight_features` records it; `pipelines.reproduce` re-checks it)."""
    stored = as_stored(frame, table).sort_values(["partition_date", "row_number"], kind="stable")
    return data_versions_by_partition(stored)


def add_partition_metadata(
    context: AssetExecutionContext, per_partition: Mapping[str, Mapping[str, object]]
) -> None:
    """Attach each day's own figures to that day's materialization event."""
    for key, meta in per_partition.items():
        context.add_asset_metadata(dict(meta), partition_key=key)


def markdown_table(rows: list[Mapping[str, object]], columns: list[str]) -> str:
    if not rows:
        return "_none_"
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    body = "\n".join(
        "| " + " | ".join(str(r.get(c, "")).replace("|", "\\|") for c in columns) + " |" for r in rows
    )
    return head + body


def partition_check_results(
    context: AssetExecutionContext,
    check_name: str,
    per_partition: Mapping[str, tuple[bool, Mapping[str, object]]],
    severity=None,
):
    """Yield one check evaluation per day of the run, then the check's output.

    Dagster plans a check execution per partition of a partitioned run, while an
    `AssetCheckResult` of a multi-day step is recorded without a partition; evaluations that
    name their partition complete each day's planned record (UI: the check per day).
    """
    from dagster import AssetCheckEvaluation, AssetCheckKey, AssetCheckSeverity, Output

    severity = severity or AssetCheckSeverity.ERROR
    key = AssetCheckKey(context.assets_def.key, check_name)
    spec = context.assets_def.get_spec_for_check_key(key)
    for partition, (passed, metadata) in per_partition.items():
        yield AssetCheckEvaluation(
            asset_key=key.asset_key,
            check_name=check_name,
            passed=passed,
            metadata=dict(metadata),
            severity=severity,
            blocking=spec.blocking,
            partition=partition,
        )
    output_name = context.op_execution_context.job_def.asset_layer.get_op_output_name(key)
    yield Output(None, output_name=output_name)
