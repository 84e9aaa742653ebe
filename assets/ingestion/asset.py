"""Ingestion: each day's flights and weather, stored as they arrived (`raw_*` tables).

Before anything is written, the day-level Great Expectations suite runs over the manifest of
what arrived (readable file, required columns present, rows present). A failing day is an
ERROR-severity blocking check: the run fails with a message naming the file, the partition and
the column, nothing is written, and nothing downstream is built. A file over
FLIGHTS_LANDING_MAX_BYTES or with a NUL character in its text is such a day (resources/source_files.py
names its size, or the line and column of each NUL); a value the warehouse still refuses on write
fails the step at once too (assets/asset_factory.py, `refused_value`).
"""

import pandas as pd
from dagster import AssetCheckSpec, AssetExecutionContext, MaterializeResult, MetadataValue, ResourceParam

from assets.asset_factory import (
    DataFailure,
    add_partition_metadata,
    day_history_metadata,
    lifecycle_asset,
    partition_check_results,
    table_metadata,
)
from assets.ingestion.logic import batch_problems, manifest, raw_rows
from assets.validation.expectations import batch_suite
from resources.data_quality import GreatExpectations
from resources.day_versions import DayVersion
from resources.registry import ModelRegistry
from resources.schemas import FLIGHTS, WEATHER, DatasetContract, raw_batches, raw_tables
from resources.source import FlightSource
from resources.warehouse import Warehouse

BATCH_CHECK = "batch_is_readable_and_complete"
DAY_COLUMNS = {"partition_date": "string", "row_count": "int", "source_file": "string", "data_version": "string"}
FAILURE_COLUMNS = {"partition": "string", "source_file": "string", "column": "string", "problem": "string"}


def _failures(problems):
    """The day-level problems as a table: where (partition, file), the column, what is wrong."""
    return table_metadata([{"partition": x.partition, "source_file": x.source_file, "column": x.column, "problem": x.problem}
                           for x in problems], FAILURE_COLUMNS)


def build_raw_asset(contract: DatasetContract):
    name = f"raw_{contract.name}"

    @lifecycle_asset(
        "ingestion",
        daily=True,
        name=name,
        writes=raw_tables[contract.name],
        kinds={"pandas", "sql"},
        check_specs=[AssetCheckSpec(
            BATCH_CHECK, asset=name, blocking=True,
            description=f"Great Expectations suite `{contract.name}_batches` on each day's file: readable, every "
            "contract column present" + ("" if contract.optional else ", at least one row")
            + ". Failing days are not written and block everything downstream.",
        )],
        description=(
            f"Each day's {contract.name} exactly as they arrived (text values, source file and row "
            f"number, unknown columns kept as JSON), in the warehouse table `{name}`; "
            "one manifest row per day in `raw_batches`. Each ingestion of a day is a new version of it "
            "(an ingestion id and its content hash); the one it replaces stays readable "
            "(`flights-history DAY`)."
        ),
    )
    def _raw(context: AssetExecutionContext, source: FlightSource, warehouse: ResourceParam[Warehouse],
             great_expectations: GreatExpectations, model_registry: ResourceParam[ModelRegistry]):
        partitions = context.partition_keys
        batches = [source.load(contract, p) for p in partitions]
        table = manifest(batches, contract)
        run = great_expectations.validate(
            table.set_index(pd.RangeIndex(len(table))), f"{name}_batches", batch_suite, contract, docs=False
        )
        problems = batch_problems(run.outcomes, table)
        suite = {"gx_suite": MetadataValue.text(f"{contract.name}_batches (assets/validation/expectations.py)")}
        per_day = {}
        for p in partitions:
            mine = [x for x in problems if x.partition == p]
            per_day[p] = (not mine, {**suite, "failures": _failures(mine)})
        if problems:
            yield from partition_check_results(context, BATCH_CHECK, per_day)
            messages = [x.render() for x in problems]
            raise DataFailure(
                description=f"{name}: {len(messages)} day-level problem(s); nothing was written:\n" + "\n".join(messages),
                metadata={"failures": _failures(problems)},
            )

        days = {r.partition_date: DayVersion(r.data_version, source_file=r.source_file, rows_in=int(r.row_count))
                for r in table.itertuples()}
        with warehouse.replace_partitions() as tx:
            written = tx.write_version(name, days, {raw_tables[contract.name]: raw_rows(batches, contract),
                                                    raw_batches: table}, run_id=context.run_id)

        history = day_history_metadata(warehouse, model_registry, name, written)
        add_partition_metadata(context, {
            r.partition_date: {"rows_in": int(r.row_count), "dagster/row_count": int(r.row_count),  # rows written to raw_*
                               "source": source.resolved_mode, "source_file": r.source_file,
                               "data_version": r.data_version, "ingestion_id": written.ids[r.partition_date],
                               "arrived_without_file": bool(r.absent), **history[r.partition_date]}
            for r in table.itertuples()
        })
        yield MaterializeResult(metadata={
            "partitions": MetadataValue.text(f"{partitions[0]} … {partitions[-1]} ({len(partitions)} days)"),
            "rows_in": MetadataValue.int(int(table["row_count"].sum())),
            "warehouse_table": MetadataValue.text(f"{warehouse.display_url} :: {name}"),
            "days": table_metadata(table.head(31).to_dict("records"), DAY_COLUMNS),
        })
        yield from partition_check_results(context, BATCH_CHECK, per_day)

    return _raw


raw_flights = build_raw_asset(FLIGHTS)
raw_weather = build_raw_asset(WEATHER)
