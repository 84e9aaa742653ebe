"""Ingestion: each day's flights and weather, stored as they arrived (`raw_*` tables).

Before anything is written, the day-level Great Expectations suite runs over the manifest of
what arrived (readable file, required columns present, rows present). A failing day is an
ERROR-severity blocking check: the run fails with a message naming the file, the partition and
the column, nothing is written, and nothing downstream is built.
"""


import json
from datetime import datetime, timezone

import pandas as pd
from dagster import (
    AssetCheckSpec,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
)

from assets.expectations import batch_suite
from assets.partitions import (
    add_partition_metadata,
    daily_partitions,
    partition_check_results,
    data_version,
    markdown_table,
    single_run_backfill,
)
from resources.retries import STORE_RETRY_POLICY, DataFailure
from resources.data_quality import GreatExpectations, SuiteRun
from resources.schemas import FLIGHTS, WEATHER, DatasetContract, raw_batches, raw_tables
from resources.source import FlightSource, SourceBatch
from resources.warehouse import Warehouse

BATCH_CHECK = "batch_is_readable_and_complete"


def manifest(batches: list[SourceBatch], contract: DatasetContract) -> pd.DataFrame:
    """One row per day: what arrived, from where, and what is wrong with it as a whole."""
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    rows = []
    for b in batches:
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
                "data_version": data_version(b.frame),
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
            out["extra_columns"] = [
                json.dumps(r, default=str) for r in frame[extras].astype(object).where(frame[extras].notna(), None).to_dict("records")
            ]
        else:
            out["extra_columns"] = None
        out.insert(0, "row_number", range(1, len(frame) + 1))
        out.insert(0, "source_file", b.source_file)
        out.insert(0, "partition_date", b.partition)
        parts.append(out)
    if not parts:
        return pd.DataFrame(columns=[c.name for c in raw_tables[contract.name].columns])
    return pd.concat(parts, ignore_index=True)


def batch_failures(run: SuiteRun, table: pd.DataFrame) -> list[str]:
    """Readable messages, one per failing day and expectation: file, partition, column."""
    messages = []
    for outcome in run.outcomes:
        if outcome.success:
            continue
        for idx in outcome.unexpected_index:
            row = table.loc[idx]
            where = f"partition {row.partition_date}, file {row.source_file}"
            column = outcome.meta.get("column")
            if column == "missing_columns":
                hint = f" (the file has unexpected column(s): {row.unexpected_columns}; renamed?)" if row.unexpected_columns else ""
                for col in str(row.missing_columns).split(", "):
                    messages.append(f"{where}, column '{col}': required column missing{hint}")
            elif column == "(file)":
                messages.append(f"{where}: {row.read_error}")
            else:
                messages.append(f"{where}: {outcome.meta.get('reason')} (rows: {row.row_count})")
    return messages


def build_raw_asset(contract: DatasetContract):
    name = f"raw_{contract.name}"
    check_specs = [
        AssetCheckSpec(
            BATCH_CHECK,
            asset=name,
            blocking=True,
            description=(
                f"Great Expectations suite `{contract.name}_batches` on each day's file: readable, "
                "every contract column present"
                + ("" if contract.optional else ", at least one row")
                + ". Failing days are not written and block everything downstream."
            ),
        )
    ]

    @asset(
        retry_policy=STORE_RETRY_POLICY,
        name=name,
        partitions_def=daily_partitions,
        backfill_policy=single_run_backfill,
        group_name="ingestion",
        kinds={"pandas", "sql"},
        owners=["team:ml-platform"],
        tags={"stage": "ingestion"},
        check_specs=check_specs,
        description=(
            f"Each day's {contract.name} exactly as they arrived (text values, source file and row "
            f"number, unknown columns kept as JSON), in the warehouse table `{name}`; "
            "one manifest row per day in `raw_batches`."
        ),
    )
    def _raw(
        context: AssetExecutionContext,
        source: FlightSource,
        warehouse: Warehouse,
        great_expectations: GreatExpectations,
    ):
        partitions = context.partition_keys
        batches = [source.load(contract, p) for p in partitions]
        table = manifest(batches, contract)
        run = great_expectations.validate(
            table.set_index(pd.RangeIndex(len(table))), f"{name}_batches", batch_suite, contract, docs=False
        )
        failures = batch_failures(run, table)
        suite_meta = {"gx_suite": MetadataValue.text(f"{contract.name}_batches (assets/expectations.py)")}
        per_day = {
            p: (
                not [m for m in failures if m.startswith(f"partition {p},")],
                {**suite_meta, "failures": MetadataValue.md(
                    "\n".join(f"- {m}" for m in failures if m.startswith(f"partition {p},")) or "none")},
            )
            for p in partitions
        }
        if failures:
            yield from partition_check_results(context, BATCH_CHECK, per_day)
            raise DataFailure(
                description=f"{name}: {len(failures)} day-level problem(s); nothing was written:\n"
                + "\n".join(failures),
                metadata={"failures": MetadataValue.md("\n".join(f"- {m}" for m in failures))},
            )

        rows = raw_rows(batches, contract)
        with warehouse.replace_partitions() as tx:
            tx.replace(raw_tables[contract.name], partitions, rows)
            tx.replace(raw_batches, partitions, table, dataset=contract.name)

        add_partition_metadata(
            context,
            {
                r.partition_date: {
                    "rows_in": int(r.row_count),
                    "source": source.mode,
                    "source_file": r.source_file,
                    "data_version": r.data_version,
                    "arrived_without_file": bool(r.absent),
                }
                for r in table.itertuples()
            },
        )
        yield MaterializeResult(
            metadata={
                "partitions": MetadataValue.text(f"{partitions[0]} … {partitions[-1]} ({len(partitions)} days)"),
                "rows_in": MetadataValue.int(int(table["row_count"].sum())),
                "warehouse_table": MetadataValue.text(f"{warehouse.display_url} :: {name}"),
                "days": MetadataValue.md(
                    markdown_table(
                        table.head(31).to_dict("records"),
                        ["partition_date", "row_count", "source_file", "data_version"],
                    )
                ),
            }
        )
        yield from partition_check_results(context, BATCH_CHECK, per_day)

    return _raw


raw_flights = build_raw_asset(FLIGHTS)
raw_weather = build_raw_asset(WEATHER)
