"""The warehouse's schema migrations (resources/warehouse_migrations): resources/schemas.py is what
the migrations make; a warehouse made by the code before migrations (a real one, made by commit
91169f1: tests/fixtures/make_old_warehouse.py) is stamped and upgraded with every version of its
days kept; an older revision is upgraded in place, an unknown newer one refused; two processes
opening a new warehouse at once migrate it once; a warehouse at the head costs one query.
The tests marked e2e also run on PostgreSQL (`make test-postgres`)."""

from __future__ import annotations

import contextlib
import gzip
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import create_engine, event, inspect

from resources import warehouse_migrations as migrations
from resources.warehouse import Warehouse
from tests.support import REPO, store_url, write_versions

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "warehouse_91169f1.sql.gz"
CORRECTED = "2013-02-05"  # the fixture's day delivered twice (make_old_warehouse.py)


def _schema_diffs(url: str) -> list:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from resources.schemas import metadata

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    finally:
        engine.dispose()


def _tables(path: Path) -> dict[str, list[tuple]]:
    """Every row of every table of a SQLite file, sorted (the same whatever the row order)."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        names = [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {n: sorted(conn.execute(f'SELECT * FROM "{n}"').fetchall(), key=repr) for n in names}  # our own names


@pytest.mark.e2e
def test_the_migrations_make_the_tables_of_resources_schemas(tmp_path):
    """A schema change in resources/schemas.py without a revision (or a revision without the
    change) fails here."""
    url = store_url(tmp_path, "warehouse")
    assert Warehouse(url=url).versions().empty  # a new warehouse: every revision
    assert migrations.current(create_engine(url)) == (migrations.head(),)
    assert _schema_diffs(url) == []


def test_a_warehouse_made_by_the_code_before_migrations_is_upgraded_with_its_versions(tmp_path):
    from assets.day_history import history_rows, model_usage
    from resources.schemas import VERSIONED_ASSETS, flight_features, quarantine, raw_batches, raw_tables

    path = tmp_path / "old.db"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.executescript(gzip.decompress(FIXTURE.read_bytes()).decode())
    before = _tables(path)
    assert "alembic_version" not in before and len(before["day_versions"]) == 20

    wh = Warehouse(url=f"sqlite:///{path}")  # opening it: stamped at the baseline, upgraded to the head
    assert migrations.current(wh.engine) == (migrations.head(),) and migrations.head() != migrations.BASELINE
    assert _schema_diffs(wh.resolved_url) == []
    after = _tables(path)
    assert after.pop("alembic_version") == [(migrations.head(),)]
    # the tables of the later revisions (0003 model_registries, ...): made, empty
    later = sorted(set(after) - set(before))
    assert "model_registries" in later and all(after.pop(name) == [] for name in later)
    assert after == before  # every row of every table, the catalog's and the histories' too

    catalog = wh.versions()
    old = catalog[catalog["superseded_at"].notna()]
    assert sorted(old["asset"]) == sorted(VERSIONED_ASSETS) and set(old["partition_date"]) == {CORRECTED}
    for row in old.itertuples():  # each superseded version reads back whole, from the history tables
        for table, dataset in VERSIONED_ASSETS[row.asset]:
            got = wh.read_versions(table, {CORRECTED: row.version_id})
            if table is raw_batches:
                assert got["dataset"].tolist() == [dataset] and got["row_count"].tolist() == [row.rows_in]
            elif table is quarantine:
                assert (got["dataset"] == dataset).all() and len(got) == row.rows_quarantined
            elif row.asset.startswith("validated"):
                assert len(got) == row.rows_valid
            else:
                assert len(got) == row.rows_in > 0
    validated = old[old["asset"] == "validated_flights"].iloc[0]
    assert validated.rows_quarantined == 1  # the first delivery's impossible distance
    assert "distance" in wh.read_versions(quarantine, {CORRECTED: validated.version_id})["reasons"].iloc[0]

    day = catalog[catalog["partition_date"] == CORRECTED]  # what `history` prints for the day
    rows = history_rows(day, model_usage([], day))
    assert [(r["asset"], r["status"].split()[0]) for r in rows] == [
        (a, s) for a in ("raw_flights", "raw_weather", "validated_flights", "validated_weather", "flight_features")
        for s in ("superseded", "current")]
    assert {r["version"] for r in rows if r["status"] != "current"} == set(old["version_id"])
    assert rows[-2]["content_hash"] == old[old["asset"] == "flight_features"]["content_hash"].iloc[0]

    # a new write after the upgrade: a new current version, the replaced one into the history
    features = wh.read(flight_features, ["2013-02-06"])
    was = wh.current_versions("flight_features", ["2013-02-06"])["2013-02-06"][0]
    written = write_versions(wh, "flight_features", {flight_features: features}, ["2013-02-06"])
    assert written.superseded == {"2013-02-06": was}
    assert len(wh.read(flight_features, ["2013-02-06"])) == len(features) == len(wh.read_versions(flight_features, {"2013-02-06": was}))
    again = write_versions(wh, "raw_flights", {raw_tables["flights"]: pd.DataFrame({
        "partition_date": ["2013-02-07"], "source_file": ["f"], "row_number": [1]})}, ["2013-02-07"])
    assert wh.current_versions("raw_flights", ["2013-02-07"])["2013-02-07"][0] == again.ids["2013-02-07"]


@pytest.mark.e2e
def test_a_warehouse_made_before_migrations_is_stamped_on_either_database(tmp_path):
    """As the code before migrations made it (`create_all` of the baseline), with a version in
    its catalog: stamped, upgraded, the version kept (SQLite or PostgreSQL: the check against the
    baseline finds no difference in what the database reflects)."""
    url = store_url(tmp_path, "warehouse")
    engine = create_engine(url)
    baseline = migrations.baseline_metadata()
    baseline.create_all(engine)
    with engine.begin() as conn:
        conn.execute(baseline.tables["day_versions"].insert().values(
            version_id="v1", asset="raw_flights", partition_date="2013-01-01", content_hash="h", created_at="t", inputs="[]"))
    assert migrations.current(engine) is None
    assert Warehouse(url=url).versions()["version_id"].tolist() == ["v1"]
    assert migrations.current(engine) == (migrations.head(),) and _schema_diffs(url) == []
    engine.dispose()


@pytest.mark.e2e
def test_a_warehouse_at_an_older_revision_is_upgraded_in_place(tmp_path):
    from alembic import command

    url = store_url(tmp_path, "warehouse")
    engine = create_engine(url)
    with engine.begin() as conn:
        command.upgrade(migrations.config(conn), migrations.BASELINE)
        conn.execute(migrations.baseline_metadata().tables["day_versions"].insert().values(
            version_id="v1", asset="raw_flights", partition_date="2013-01-01", content_hash="h", created_at="t", inputs="[]"))
    assert "ix_day_versions_partition" not in {i["name"] for i in inspect(engine).get_indexes("day_versions")}
    wh = Warehouse(url=url)
    assert wh.versions(days=["2013-01-01"])["version_id"].tolist() == ["v1"]
    assert migrations.current(engine) == (migrations.head(),)
    assert "ix_day_versions_partition" in {i["name"] for i in inspect(engine).get_indexes("day_versions")}
    engine.dispose()


@pytest.mark.e2e
def test_a_warehouse_upgraded_by_newer_code_is_refused_naming_both_revisions(tmp_path):
    from resources.errors import DataProblem

    url = store_url(tmp_path, "warehouse")
    engine = create_engine(url)
    migrations.upgrade(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0999'")
    wh = Warehouse(url=url)
    with pytest.raises(DataProblem) as refused:
        wh.versions()
    message = str(refused.value)
    assert "\n" not in message and wh.display_url in message
    assert f"revision 0999, which this code does not know (its newest is {migrations.head()})" in message
    assert migrations.current(engine) == ("0999",)  # left as it was
    engine.dispose()


# one process opening a warehouse: with a marker file, it pauses inside its migration, before its
# first CREATE TABLE, after creating the marker
_OPEN = """
import sys, time
from pathlib import Path
from sqlalchemy import create_engine, event
from resources import warehouse_migrations as migrations

url, marker = sys.argv[1], sys.argv[2]
engine = create_engine(url, **({"connect_args": {"timeout": 30}} if url.startswith("sqlite") else {}))
if marker != "-":
    @event.listens_for(engine, "before_cursor_execute")
    def _hold(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("CREATE TABLE") and not Path(marker).exists():
            Path(marker).touch()
            time.sleep(2)
migrations.upgrade(engine)
"""


@pytest.mark.e2e
def test_two_processes_opening_a_new_warehouse_at_once_migrate_it_once(tmp_path):
    """The first is held inside its migration until the second has started its own: the second
    waits for the first's lock, then finds the head. Without the lock the second would create
    the tables too, and one of them would fail."""
    url = store_url(tmp_path, "warehouse")
    marker = tmp_path / "inside"
    first = subprocess.Popen([sys.executable, "-c", _OPEN, url, str(marker)], cwd=REPO, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert first.poll() is None and time.monotonic() < deadline, first.stderr.read()
        time.sleep(0.05)
    second = subprocess.run([sys.executable, "-c", _OPEN, url, "-"], cwd=REPO, stderr=subprocess.PIPE, text=True, timeout=120)
    first_error = first.communicate(timeout=120)[1]
    assert (first.returncode, second.returncode) == (0, 0), (first_error[-2000:], second.stderr[-2000:])
    engine = create_engine(url)
    assert migrations.current(engine) == (migrations.head(),) and _schema_diffs(url) == []
    engine.dispose()


def test_a_warehouse_at_the_head_costs_one_query(tmp_path):
    url = f"sqlite:///{tmp_path / 'w.db'}"
    engine = create_engine(url)
    migrations.upgrade(engine)
    statements = []
    event.listen(engine, "before_cursor_execute", lambda conn, cursor, statement, *args: statements.append(statement))
    migrations.upgrade(engine)
    assert statements == ["SELECT version_num FROM alembic_version"]



# in a process of its own (it changes resources/schemas.py's metadata and the migrations' folder):
# a column added to schemas.py, the compare before and after the revision helper wrote a revision
_NEW_COLUMN = """
import shutil, sys
from pathlib import Path
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from resources import schemas, warehouse_migrations as migrations
from resources.warehouse_migrations.__main__ import new_revision

scratch = Path(sys.argv[1])
shutil.copytree(migrations.FOLDER, scratch / "migrations", ignore=shutil.ignore_patterns("__pycache__"))
migrations.FOLDER = scratch / "migrations"
schemas.served_predictions.append_column(sa.Column("latency_ms", sa.Float))

def diffs(name):
    engine = sa.create_engine(f"sqlite:///{scratch / name}")
    migrations._script.cache_clear()
    migrations.upgrade(engine)
    with engine.connect() as conn:
        return [d[0] for d in compare_metadata(MigrationContext.configure(conn), schemas.metadata)]

print(diffs("before.db"))
print(new_revision("served predictions latency").name)
print(diffs("after.db"), migrations.head())
"""


def test_a_change_of_the_schema_is_caught_until_a_revision_makes_it(tmp_path):
    """The workflow of docs/data.md: a column added to resources/schemas.py is a difference
    the compare test reports; `python -m resources.warehouse_migrations MESSAGE` writes the
    revision that makes it; then there is none."""
    out = subprocess.run([sys.executable, "-c", _NEW_COLUMN, str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    next_number = f"{int(migrations.head()) + 1:04d}"
    lines = [line for line in out.stdout.splitlines() if not line.startswith("Generating ")]  # alembic's own line
    assert lines == ["['add_column']", f"{next_number}_served_predictions_latency.py", f"[] {next_number}"]
    assert "add_column(sa.Column('latency_ms'" in (tmp_path / "migrations" / "versions" / f"{next_number}_served_predictions_latency.py").read_text()
