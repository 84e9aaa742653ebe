"""Two writers of the same day at once, on the profile's database (SQLite or PostgreSQL)."""

import threading

from resources.schemas import validated_tables
from resources.warehouse import Warehouse
from tests.support import store_url, typed_day


def test_two_writers_of_the_same_day_leave_one_version(tmp_path):
    """The second writer waits for the first and replaces its rows: never both versions (on
    PostgreSQL, READ COMMITTED would otherwise let the second DELETE miss the first's rows)."""
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


