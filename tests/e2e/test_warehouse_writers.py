"""Two writers of the same day at once, on the profile's database (SQLite or PostgreSQL)."""

import threading

from resources.day_versions import DayVersion
from resources.schemas import history_tables, quarantine, validated_tables
from resources.warehouse import Warehouse
from tests.support import store_url, typed_day, write_versions


def test_two_writers_of_the_same_day_leave_one_current_version(tmp_path):
    """The second writer waits for the first and supersedes its version: one current version,
    its rows alone in the current table, each superseded version whole in the history (on
    PostgreSQL, READ COMMITTED would otherwise let the second writer miss the first's rows)."""
    day = "2013-05-20"
    wh = Warehouse(url=store_url(tmp_path, "warehouse"))
    rows = typed_day("flights", day)
    first, second = rows.iloc[:300], rows.iloc[300:500]
    table = validated_tables["flights"]
    old = write_versions(wh, "validated_flights", {table: rows}, [day], "old")  # an old version of the day
    inside, release = threading.Event(), threading.Event()
    written = {}

    def writer(name, frame, hold):
        with wh.replace_partitions() as tx:
            written[name] = tx.write_version("validated_flights", {day: DayVersion(name)},
                                             {table: frame, quarantine: frame.iloc[0:0]})
            if hold:
                inside.set()
                release.wait(30)  # holds its transaction open while the second writer starts

    t1 = threading.Thread(target=writer, args=("first", first, True))
    t1.start()
    assert inside.wait(30)
    t2 = threading.Thread(target=writer, args=("second", second, False))
    t2.start()
    t2.join(1.0)  # it cannot finish while the first holds the day
    assert t2.is_alive()
    release.set()
    t1.join(30)
    t2.join(60)
    stored = wh.read(table, [day])
    assert sorted(stored["row_number"]) == sorted(second["row_number"])  # the later write, alone

    catalog = wh.versions(assets=["validated_flights"])
    ids = {name: w.ids[day] for name, w in written.items()}
    assert catalog["version_id"].tolist() == [old.ids[day], ids["first"], ids["second"]]
    assert catalog["superseded_at"].isna().tolist() == [False, False, True]
    assert written["second"].superseded == {day: ids["first"]}  # it saw the first's version, not the old one
    history = wh.read_versions(table, {day: ids["first"]})
    assert sorted(history["row_number"]) == sorted(first["row_number"])  # the first's version, whole
    assert len(wh.read_versions(table, {day: old.ids[day]})) == len(rows)
    assert wh.count_by_partition(history_tables[table.name], [day])[day] == len(rows) + len(first)  # nothing doubled
