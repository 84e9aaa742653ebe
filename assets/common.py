"""Plain helpers shared by the stages' logic (no Dagster): the calendar of day partitions, data
versions of stored rows, markdown tables for reports and the failure every stage raises on data
that retrying cannot fix."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from datetime import date, timedelta

import pandas as pd

from resources.errors import DataProblem

# The embedded replay: one partition per day of 2013.
PARTITION_START = "2013-01-01"
PARTITION_END_EXCLUSIVE = "2014-01-01"


@functools.lru_cache(maxsize=1)
def _days() -> tuple[str, ...]:
    start, end = date.fromisoformat(PARTITION_START), date.fromisoformat(PARTITION_END_EXCLUSIVE)
    return tuple((start + timedelta(days=i)).isoformat() for i in range((end - start).days))


def partition_days() -> list[str]:
    """Every day partition, oldest first (the same keys as the Dagster partitions definition)."""
    return list(_days())


def days_ending(day: str, n: int) -> list[str]:
    """The `n` partition days ending with `day` (fewer at the start of the calendar)."""
    keys = _days()
    if day not in keys:
        raise DataProblem(f"{day!r} is not a day of the partitions ({keys[0]} … {keys[-1]})")
    i = keys.index(day)
    return list(keys[max(0, i - n + 1): i + 1])


def previous_day(day: str) -> str | None:
    keys = _days()
    i = keys.index(day)
    return keys[i - 1] if i > 0 else None


def _row_hashes(frame: pd.DataFrame):
    """One 64-bit hash per row over its values (pandas' own `hash_pandas_object`, vectorized).
    Text hashes alike whatever its pandas dtype (`str` or objects, None or NaN for missing)."""
    return pd.util.hash_pandas_object(frame, index=False).to_numpy()


def _version(columns, row_hashes) -> str:
    digest = hashlib.sha256("\x1f".join(map(str, columns)).encode())
    digest.update(row_hashes.tobytes())
    return digest.hexdigest()[:16]


def data_version(frame: pd.DataFrame) -> str:
    """Content hash of a frame: its columns and values in row order (not the index)."""
    return _version(frame.columns, _row_hashes(frame))


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


def data_versions_of(frames: list[pd.DataFrame]) -> list[str]:
    """`data_version` of each frame, hashing the frames that share their columns in one go (a
    year of daily batches: one hashing per set of columns instead of one per day)."""
    out: list[str | None] = [None] * len(frames)
    groups: dict[tuple, list[int]] = {}
    for i, frame in enumerate(frames):
        groups.setdefault(tuple(map(str, frame.columns)), []).append(i)
    for members in groups.values():
        together = pd.concat([frames[i] for i in members], ignore_index=True)
        hashes = _row_hashes(together)
        start = 0
        for i in members:
            out[i] = _version(frames[i].columns, hashes[start:start + len(frames[i])])
            start += len(frames[i])
    return out


def data_versions_by_partition(frame: pd.DataFrame, exclude: tuple[str, ...] = ()) -> dict[str, str]:
    """`data_version` of each day's rows of a multi-day frame, hashing every row once."""
    content = frame.drop(columns=[c for c in exclude if c in frame.columns])
    hashes = _row_hashes(content)  # every row hashed once, then grouped by day
    return {day: _version(content.columns, hashes[rows])
            for day, rows in content.groupby("partition_date", sort=False).indices.items()}


def stored_data_versions(frame: pd.DataFrame, table) -> dict[str, str]:
    """Data version of each day as `table` stores the rows: the same before writing and after
    reading back (`flight_features` records it; `pipelines.commands.reproduce` re-checks it)."""
    stored = as_stored(frame, table).sort_values(["partition_date", "row_number"], kind="stable")
    return data_versions_by_partition(stored)


def markdown_table(rows: list[Mapping[str, object]], columns: list[str]) -> str:
    """Rows as a markdown table, for the model card (a markdown document, stored as model_card.md);
    materialization metadata uses Dagster tables (`assets.asset_factory.table_metadata`)."""
    if not rows:
        return "_none_"
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    body = "\n".join(
        "| " + " | ".join(str(r.get(c, "")).replace("|", "\\|") for c in columns) + " |" for r in rows
    )
    return head + body


def bullet_list(lines: list[str]) -> str:
    return "\n".join(f"- {line}" for line in lines) or "none"
