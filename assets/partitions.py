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
    """Content hash of a frame (columns and values, order-independent of the index)."""
    h = hashlib.sha256(",".join(map(str, frame.columns)).encode())
    if len(frame):
        h.update(pd.util.hash_pandas_object(frame, index=False).values.tobytes())
    return h.hexdigest()[:16]


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
