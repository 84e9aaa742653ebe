"""Ingestion logic (no Dagster): what arrived for each day, in the raw table's shape, and what is
wrong with a day's file as a whole (unreadable, a contract column missing, no rows)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd

from assets.common import data_versions_of
from resources.schemas import DatasetContract, content_columns, raw_tables
from resources.source_files import SourceBatch


@dataclass(frozen=True)
class BatchProblem:
    """A day-level problem of one file: where it is (partition, file), the column, what is wrong."""

    partition: str
    source_file: str
    column: str | None
    problem: str

    def render(self) -> str:
        where = f"partition {self.partition}, file {self.source_file}"
        return f"{where}, column '{self.column}': {self.problem}" if self.column else f"{where}: {self.problem}"


def manifest(batches: list[SourceBatch], contract: DatasetContract) -> pd.DataFrame:
    """One row per day: what arrived, from where, and what is wrong with it as a whole."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    rows = []
    versions = data_versions_of([b.frame for b in batches])
    for b, version in zip(batches, versions, strict=True):
        missing = [c for c in contract.column_names if c not in b.columns]
        unexpected = [c for c in b.columns if c not in contract.columns]
        unreadable = b.read_error is not None and not b.columns
        rows.append(
            {
                "partition_date": b.partition,
                "dataset": contract.name,
                "source_file": b.source_file,
                "row_count": len(b.frame),
                "columns": json.dumps(b.columns),
                "read_error": b.read_error,
                # an absent optional file is no schema problem; an unreadable one has no columns
                "missing_columns": ", ".join(missing) if missing and not b.absent and not unreadable else None,
                "unexpected_columns": ", ".join(unexpected) or None,
                "absent": b.absent,
                "data_version": version,
                "ingested_at": now,
            }
        )
    return pd.DataFrame(rows)


def raw_rows(batches: list[SourceBatch], contract: DatasetContract) -> pd.DataFrame:
    """The arrived rows in the raw table's shape: contract columns as text, extras as JSON."""
    parts = []
    for b in batches:
        if not len(b.frame):
            continue
        frame = b.frame.copy()
        frame.columns = [str(c) for c in frame.columns]
        out = frame.reindex(columns=contract.column_names)
        extras = [c for c in frame.columns if c not in contract.columns]
        if extras:
            values = frame[extras].astype(object).where(frame[extras].notna(), None)
            out["extra_columns"] = [json.dumps(r, default=str) for r in values.to_dict("records")]
        else:
            out["extra_columns"] = None
        out.insert(0, "row_number", range(1, len(frame) + 1))
        out.insert(0, "source_file", b.source_file)
        out.insert(0, "partition_date", b.partition)
        parts.append(out)
    if not parts:
        return pd.DataFrame(columns=content_columns(raw_tables[contract.name]))
    return pd.concat(parts, ignore_index=True)


def batch_problems(outcomes, table: pd.DataFrame) -> list[BatchProblem]:
    """One problem per failing day, expectation and column, from the day-level suite's outcomes
    (`resources.data_quality.ExpectationOutcome`) over the manifest `table`."""
    problems = []
    for outcome in outcomes:
        if outcome.success:
            continue
        for idx in outcome.unexpected_index:
            row = table.loc[idx]
            column = outcome.meta.get("column")
            if column == "missing_columns":
                hint = (f" (the file has unexpected column(s): {row.unexpected_columns}; renamed?)"
                        if row.unexpected_columns else "")
                problems += [BatchProblem(row.partition_date, row.source_file, col, f"required column missing{hint}")
                             for col in str(row.missing_columns).split(", ")]
            elif column == "(file)":
                problems.append(BatchProblem(row.partition_date, row.source_file, None, str(row.read_error)))
            else:
                problems.append(BatchProblem(row.partition_date, row.source_file, None,
                                             f"{outcome.meta.get('reason')} (rows: {row.row_count})"))
    return problems
