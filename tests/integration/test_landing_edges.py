"""Landing files at the edges, through the real ingestion asset (in-process Dagster, real GX, a
real warehouse: SQLite, and PostgreSQL in `make test-postgres`, where these tests run again).

A file over FLIGHTS_LANDING_MAX_BYTES, or with a NUL character in its text, fails its day at once
(no retry), naming the file and what is wrong with it (its size; the line or row and column of
each NUL), and nothing is written. A value the warehouse refuses on write (a driver's DataError)
fails its step at once too, naming the partition, the table and the column."""

import pandas as pd
import pytest
from dagster import DagsterInstance, ResourceParam, materialize
from sqlalchemy import text

from pipelines.definitions import defs
from tests.support import POSTGRES_SERVER, replay_day, write_landing

DAY = "2013-03-04"


def _ingest(resources):
    return materialize([defs.get_assets_def("raw_flights")], partition_key=DAY, resources=resources,
                       instance=DagsterInstance.ephemeral(), raise_on_error=False)


def _failure(result) -> str:
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert not result.success and len(failures) == 1
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]  # bad data: not retried
    assert failures[0].event_specific_data.error.cls_name == "DataFailure"
    return failures[0].event_specific_data.error.message


def _raw_rows(resources) -> int:
    with resources["warehouse"].engine.connect() as conn:
        return conn.execute(text("SELECT COUNT(*) FROM raw_flights")).scalar()


@pytest.mark.e2e
def test_a_file_over_the_size_limit_is_refused_unread(resources, workdir, monkeypatch):
    path = write_landing(workdir["landing"], "flights", DAY, replay_day("flights", DAY))
    size = path.stat().st_size
    monkeypatch.setenv("FLIGHTS_LANDING_MAX_BYTES", str(size - 1))
    message = _failure(_ingest(resources))
    assert f"partition {DAY}, file {path}: the file is {size:,} bytes, over the limit FLIGHTS_LANDING_MAX_BYTES={size - 1:,}" \
        in message, message
    assert _raw_rows(resources) == 0
    monkeypatch.setenv("FLIGHTS_LANDING_MAX_BYTES", str(size))  # at the limit: read
    assert _ingest(resources).success and _raw_rows(resources) > 0


@pytest.mark.e2e
def test_a_nul_character_is_refused_naming_its_line_and_column(resources, workdir):
    flights = replay_day("flights", DAY).head(20).astype(object)
    flights.at[2, "dest"] = "two\nlines"  # a quoted value over two lines: later records start a line further down
    flights.at[5, "tailnum"] = "N1\x00"
    flights.at[9, "carrier"] = "\x00"
    path = write_landing(workdir["landing"], "flights", DAY, flights)
    message = _failure(_ingest(resources))
    # line 1 is the header; data row 6 starts on line 8 (row 3 spans two lines), row 10 on line 12
    assert (f"partition {DAY}, file {path}: NUL character (0x00) in 2 value(s): line 8, column 'tailnum'; "
            "line 12, column 'carrier'") in message, message
    assert _raw_rows(resources) == 0


@pytest.mark.e2e
def test_a_nul_character_in_a_parquet_file_or_a_column_name_is_refused(resources, workdir):
    flights = replay_day("flights", DAY).head(20).astype(object)
    flights.at[6, "origin"] = "J\x00FK"
    path = write_landing(workdir["landing"], "flights", DAY, flights, fmt="parquet")
    assert "NUL character (0x00) in 1 value(s): row 7, column 'origin'" in _failure(_ingest(resources))
    path.unlink()
    path = write_landing(workdir["landing"], "flights", DAY, replay_day("flights", DAY).rename(columns={"dest": "de\x00st"}))
    assert "line 1, column '#14'" in _failure(_ingest(resources))  # the header's own NUL: the column by position
    assert _raw_rows(resources) == 0


@pytest.mark.e2e
@pytest.mark.skipif(not POSTGRES_SERVER, reason="a value PostgreSQL refuses (SQLite stores any): FLIGHTS_TEST_POSTGRES_URL")
def test_a_value_the_warehouse_refuses_fails_the_step_at_once_naming_table_and_column(resources):
    """An integer beyond PostgreSQL's `integer` (the driver's DataError) through the warehouse's
    real write path, in an asset of the pipeline's own decorator (its store retry policy)."""
    from assets.asset_factory import lifecycle_asset
    from resources.schemas import predictions
    from resources.warehouse import Warehouse

    columns = [c.name for c in predictions.columns]
    assert "flight" in columns

    @lifecycle_asset("scoring", daily=True, name="overflowing_predictions")
    def overflowing_predictions(context, warehouse: ResourceParam[Warehouse]):
        row = {c: 1 for c in columns} | {"partition_date": context.partition_key, "carrier": "UA", "origin": "EWR",
                                          "dest": "IAH", "sched_dep_ts": f"{context.partition_key}T05:15:00",
                                          "model_name": "m", "model_version": "1", "flight": 2**40}
        with warehouse.replace_partitions() as tx:
            tx.replace(predictions, [context.partition_key], pd.DataFrame([row]))

    result = materialize([overflowing_predictions], partition_key=DAY, resources={"warehouse": resources["warehouse"]},
                         instance=DagsterInstance.ephemeral(), raise_on_error=False)
    message = _failure(result)
    assert (f"overflowing_predictions: the warehouse refused a value (partition {DAY}, table "
            "predictions, column 'flight'): integer out of range") in message, message
