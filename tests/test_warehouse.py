import pandas as pd
import pytest

from resources.schemas import quarantine, raw_batches
from resources.warehouse import Warehouse


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


def test_replace_is_idempotent_per_partition(tmp_path):
    wh = Warehouse(url=f"sqlite:///{tmp_path / 'w.db'}")
    for n in (1, 2, 3):
        with wh.replace_partitions() as tx:
            tx.replace(raw_batches, ["2013-01-01"], _batches("2013-01-01", n), dataset="flights")
    got = wh.read(raw_batches, ["2013-01-01"])
    assert len(got) == 1 and got.loc[0, "row_count"] == 3


def test_failure_inside_the_transaction_leaves_every_table_as_before(tmp_path):
    wh = Warehouse(url=f"sqlite:///{tmp_path / 'w.db'}")
    with wh.replace_partitions() as tx:
        tx.replace(raw_batches, ["2013-01-01"], _batches("2013-01-01", 7), dataset="flights")
    bad_q = pd.DataFrame({"partition_date": ["2013-01-01"], "source_file": ["x"], "row_number": [1],
                          "reasons": [None], "original_row": ["{}"]})  # reasons NOT NULL -> fails
    with pytest.raises(Exception):
        with wh.replace_partitions() as tx:
            tx.replace(raw_batches, ["2013-01-01"], _batches("2013-01-01", 99), dataset="flights")
            tx.replace(quarantine, ["2013-01-01"], bad_q, dataset="flights")
    got = wh.read(raw_batches, ["2013-01-01"])
    assert got["row_count"].tolist() == [7]
    assert wh.count_by_partition(quarantine, ["2013-01-01"]) == {"2013-01-01": 0}


def test_other_partitions_and_datasets_are_untouched(tmp_path):
    wh = Warehouse(url=f"sqlite:///{tmp_path / 'w.db'}")
    with wh.replace_partitions() as tx:
        tx.replace(raw_batches, ["2013-01-01", "2013-01-02"],
                   pd.concat([_batches("2013-01-01", 1), _batches("2013-01-02", 2)]), dataset="flights")
        tx.replace(raw_batches, ["2013-01-01"], _batches("2013-01-01", 5), dataset="weather")
    with wh.replace_partitions() as tx:
        tx.replace(raw_batches, ["2013-01-01"], _batches("2013-01-01", 10), dataset="flights")
    got = wh.read(raw_batches, ["2013-01-01", "2013-01-02"]).sort_values(["partition_date", "dataset"])
    assert got[["partition_date", "dataset", "row_count"]].values.tolist() == [
        ["2013-01-01", "flights", 10], ["2013-01-01", "weather", 5], ["2013-01-02", "flights", 2]
    ]


@pytest.mark.e2e
def test_two_writers_of_the_same_day_leave_one_version(tmp_path):
    """The second writer waits for the first and replaces its rows: never both versions (on
    PostgreSQL, READ COMMITTED would otherwise let the second DELETE miss the first's rows)."""
    import threading

    from resources.schemas import validated_tables
    from tests.conftest import store_url, typed_day

    day = "2013-05-20"
    wh = Warehouse(url=store_url(tmp_path, "warehouse"))
    rows = typed_day("flights", day)
    first, second = rows.iloc[:300], rows.iloc[300:500]
    table = validated_tables["flights"]
    with wh.replace_partitions() as tx:
        tx.replace(table, [day], rows)  # an old version of the day
    inside, release = threading.Event(), threading.Event()

    def first_writer():
        with wh.replace_partitions() as tx:
            tx.replace(table, [day], first)
            inside.set()
            release.wait(30)  # holds its transaction open while the second writer starts

    def second_writer():
        with wh.replace_partitions() as tx:
            tx.replace(table, [day], second)

    t1 = threading.Thread(target=first_writer)
    t1.start()
    assert inside.wait(30)
    t2 = threading.Thread(target=second_writer)
    t2.start()
    t2.join(1.0)  # it cannot finish while the first holds the day
    assert t2.is_alive()
    release.set()
    t1.join(30)
    t2.join(60)
    stored = wh.read(table, [day])
    assert sorted(stored["row_number"]) == sorted(second["row_number"])  # the later write, alone


def test_a_table_from_an_older_schema_is_named_with_its_missing_columns(tmp_path):
    import sqlite3

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # flight_features as an older version created it
        conn.execute("CREATE TABLE flight_features (partition_date VARCHAR(10), row_number INTEGER)")
    from resources.retries import DataFailure

    with pytest.raises(DataFailure, match=r"table flight_features lacks columns \[.*'tail_prev_dep_delay'.*\].*make clean"):
        Warehouse(url=f"sqlite:///{path}").read(quarantine, ["2013-01-01"])
