"""The warehouse: days written in one transaction as new versions (the old ones kept), other days
and datasets untouched, a warehouse of an older schema brought to this one or, when no migration
can, refused naming what it lacks (tests/integration/test_warehouse_migrations.py: the rest)."""

import contextlib

import pandas as pd
import pytest
from sqlalchemy.exc import IntegrityError

from resources.day_versions import DayVersion
from resources.schemas import quarantine, raw_batches, raw_tables, validated_tables
from resources.warehouse import Warehouse
from tests.support import warehouse_snapshot, write_versions


def _batches(day: str, n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "partition_date": [day],
            "source_file": [f"f_{day}_{n}"],
            "row_count": [n],
            "columns": ["[]"],
            "read_error": [None],
            "data_version": ["v"],
            "ingested_at": ["now"],
        }
    )


def test_writing_a_day_again_makes_a_new_current_version_and_keeps_the_old_one(tmp_path):
    wh = Warehouse(url=f"sqlite:///{tmp_path / 'w.db'}")
    written = [write_versions(wh, "raw_flights", {raw_batches: _batches("2013-01-01", n)}, ["2013-01-01"], f"h{n}")
               for n in (1, 2, 3)]
    got = wh.read(raw_batches, ["2013-01-01"])
    assert len(got) == 1 and got.loc[0, "row_count"] == 3  # reads see the current version
    assert "version_id" not in got.columns
    ids = [w.ids["2013-01-01"] for w in written]
    assert [w.superseded for w in written] == [{}, {"2013-01-01": ids[0]}, {"2013-01-01": ids[1]}]
    catalog = wh.versions(assets=["raw_flights"])
    assert catalog["version_id"].tolist() == ids and catalog["content_hash"].tolist() == ["h1", "h2", "h3"]
    assert catalog["superseded_at"].isna().tolist() == [False, False, True]  # one current version
    assert wh.current_versions("raw_flights", ["2013-01-01"]) == {"2013-01-01": (ids[2], "h3")}
    for n, vid in zip((1, 2, 3), ids, strict=True):  # every version stays readable by its id
        assert wh.read_versions(raw_batches, {"2013-01-01": vid})["row_count"].tolist() == [n]


def test_a_versioned_table_refuses_a_plain_replace(tmp_path):
    wh = Warehouse(url=f"sqlite:///{tmp_path / 'w.db'}")
    with pytest.raises(ValueError, match="write_version"), wh.replace_partitions() as tx:
        tx.replace(raw_batches, ["2013-01-01"], _batches("2013-01-01", 1), dataset="flights")


def test_failure_inside_the_transaction_leaves_every_table_as_before(tmp_path):
    wh = Warehouse(url=f"sqlite:///{tmp_path / 'w.db'}")
    first = write_versions(wh, "raw_flights", {raw_batches: _batches("2013-01-01", 7)}, ["2013-01-01"])
    bad_q = pd.DataFrame({"partition_date": ["2013-01-01"], "source_file": ["x"], "row_number": [1],
                          "reasons": [None], "original_row": ["{}"]})  # reasons NOT NULL -> fails
    before = warehouse_snapshot(wh)
    with pytest.raises(IntegrityError):
        with wh.replace_partitions() as tx:
            tx.write_version("raw_flights", {"2013-01-01": DayVersion("x")},
                             {raw_batches: _batches("2013-01-01", 99), raw_tables["flights"]: _batches("2013-01-01", 0)})
            tx.write_version("validated_flights", {"2013-01-01": DayVersion("y")},
                             {quarantine: bad_q, validated_tables["flights"]: bad_q.iloc[0:0]})
    got = wh.read(raw_batches, ["2013-01-01"])
    assert got["row_count"].tolist() == [7]
    assert wh.count_by_partition(quarantine, ["2013-01-01"]) == {"2013-01-01": 0}
    assert warehouse_snapshot(wh) == before  # no version, no history row, no catalog entry
    assert wh.current_versions("raw_flights", ["2013-01-01"])["2013-01-01"][0] == first.ids["2013-01-01"]


def test_other_partitions_and_datasets_are_untouched(tmp_path):
    wh = Warehouse(url=f"sqlite:///{tmp_path / 'w.db'}")
    write_versions(wh, "raw_flights", {raw_batches: pd.concat([_batches("2013-01-01", 1), _batches("2013-01-02", 2)])},
                   ["2013-01-01", "2013-01-02"])
    write_versions(wh, "raw_weather", {raw_batches: _batches("2013-01-01", 5)}, ["2013-01-01"])
    write_versions(wh, "raw_flights", {raw_batches: _batches("2013-01-01", 10)}, ["2013-01-01"])
    got = wh.read(raw_batches, ["2013-01-01", "2013-01-02"]).sort_values(["partition_date", "dataset"])
    assert got[["partition_date", "dataset", "row_count"]].values.tolist() == [
        ["2013-01-01", "flights", 10], ["2013-01-01", "weather", 5], ["2013-01-02", "flights", 2]
    ]
    current = wh.versions()
    current = current[current["superseded_at"].isna()]
    assert sorted(zip(current["asset"], current["partition_date"], strict=True)) == [
        ("raw_flights", "2013-01-01"), ("raw_flights", "2013-01-02"), ("raw_weather", "2013-01-01")]


def test_a_warehouse_older_than_the_baseline_is_refused_naming_what_it_lacks_and_left_as_it_was(tmp_path):
    """A table of the code before versions (no version_id, no feature columns of today): no
    migration can fill in the columns of its rows; the message says what is missing, and
    nothing is created (the upgrade's transaction is rolled back)."""
    import sqlite3

    from resources.errors import DataProblem

    path = tmp_path / "old.db"
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:  # flight_features as an older version created it
        conn.execute("CREATE TABLE flight_features (partition_date VARCHAR(10), row_number INTEGER)")
    with pytest.raises(DataProblem, match=r"no schema revision .* baseline \(revision 0001\).*table flight_features lacks "
                                          r"columns \['version_id', .*'tail_prev_dep_delay'.*\]") as refused:
        Warehouse(url=f"sqlite:///{path}").read(quarantine, ["2013-01-01"])
    assert "make clean" not in str(refused.value) and "\n" not in str(refused.value)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == ["flight_features"]


def test_a_warehouse_made_before_migrations_gets_the_baseline_tables_and_indexes_it_lacks(tmp_path):
    """Made by the code before migrations, it may lack a table or an index that code added later
    (its `create_all` added new tables, never an index to an existing one): created, then stamped
    and upgraded to the head."""
    from sqlalchemy import create_engine, inspect

    from resources import warehouse_migrations as migrations
    from resources.schemas import shadow_predictions

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    baseline = migrations.baseline_metadata()
    baseline.create_all(engine, tables=[t for t in baseline.sorted_tables if t.name != "shadow_predictions"])
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_day_versions_day")
    wh = Warehouse(url=url)
    assert wh.read(shadow_predictions, ["2013-01-01"]).empty
    assert {"ix_day_versions_day", "ix_day_versions_partition"} <= {i["name"] for i in inspect(engine).get_indexes("day_versions")}
    assert migrations.current(engine) == (migrations.head(),)
    engine.dispose()


def test_a_float_column_that_is_null_on_every_row_of_a_day_reads_back_as_float(tmp_path):
    """2013-03-10 had no wind gust reported at all: its column must still read as float64 (as
    on days with gusts), or Evidently's drift report refuses the day."""
    from resources.schemas import FEATURE_COLUMNS_CATEGORICAL, FEATURE_COLUMNS_NUMERIC, flight_features

    wh = Warehouse(url=f"sqlite:///{tmp_path / 'w.db'}")
    rows = pd.DataFrame({"partition_date": ["2013-03-10"] * 2, "row_number": [1, 2], "flight": [1, 2], "tailnum": [None, "N1"],
                         "sched_dep_ts": ["2013-03-10T06:00:00"] * 2,
                         **{c: [1.5, None] for c in FEATURE_COLUMNS_NUMERIC},
                         **{c: ["x", "y"] for c in FEATURE_COLUMNS_CATEGORICAL},
                         "arr_delay": [3.0, 20.0], "cancelled": [0, 0], "is_late": [0, 1]})
    rows["wind_gust"] = None
    write_versions(wh, "flight_features", {flight_features: rows}, ["2013-03-10"])
    got = wh.read(flight_features, ["2013-03-10"])
    assert got["wind_gust"].dtype == "float64" and got["wind_gust"].isna().all()
    assert got["temp"].tolist()[0] == 1.5 and got["tailnum"].tolist()[1] == "N1"  # text stays text
    assert wh.read(flight_features, ["2013-03-10"], columns=["wind_gust"])["wind_gust"].dtype == "float64"


def test_a_days_data_version_is_the_same_before_writing_and_after_reading_back(tmp_path):
    """The features' data version (recorded on every model, re-checked by `pipelines.commands.reproduce`)
    does not depend on the pandas dtypes a frame arrives with, and changes with any value."""
    from assets.common import data_version, data_versions_by_partition, stored_data_versions
    from resources.schemas import flight_features
    from tests.support import feature_days

    days = ["2013-02-03", "2013-02-04"]
    features = feature_days(days)
    before = stored_data_versions(features, flight_features)
    wh = Warehouse(url=f"sqlite:///{tmp_path / 'w.db'}")
    written = write_versions(wh, "flight_features", {flight_features: features}, days)
    assert stored_data_versions(wh.read(flight_features, days), flight_features) == before
    assert stored_data_versions(wh.read_versions(flight_features, written.ids), flight_features) == before
    one_day = features[features["partition_date"] == days[0]]
    assert data_versions_by_partition(features)[days[0]] == data_version(one_day)  # a day alone or among others
    assert data_version(one_day.astype({"carrier": object})) == data_version(one_day)
    changed = features.copy()
    changed.loc[changed.index[5], "temp"] += 0.1
    after = stored_data_versions(changed, flight_features)
    assert after[days[0]] != before[days[0]] and after[days[1]] == before[days[1]]
