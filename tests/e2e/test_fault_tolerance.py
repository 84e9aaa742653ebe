"""Faults injected into real runs: a writer killed mid-transaction, two runs of the same day at
once. Each leaves whole partitions."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from dagster import DagsterInstance
from sqlalchemy import text

from resources.schemas import flight_features
from tests.support import REPO, make_dagster_home, store_url, typed_day, warehouse_snapshot, write_versions

DAY = "2013-05-14"

KILLED_WRITER = r"""
import sys, time
import pandas as pd
from resources.day_versions import DayVersion
from resources.schemas import quarantine, validated_tables
from resources.warehouse import Warehouse

url, day, rows_path, marker = sys.argv[1:5]
new = pd.read_parquet(rows_path)
with Warehouse(url=url).replace_partitions() as tx:
    tx.write_version("validated_flights", {day: DayVersion("new")},       # the new version, uncommitted
                     {validated_tables["flights"]: new, quarantine: new.iloc[0:0]})
    open(marker, "w").write("inside the transaction")
    time.sleep(120)                                                         # SIGKILL lands here
"""


def _rows(warehouse, table: str) -> list[tuple]:
    with warehouse.engine.connect() as conn:
        return sorted(map(tuple, conn.execute(text(f'SELECT * FROM "{table}" WHERE partition_date = :d'), {"d": DAY})))


def test_a_writer_killed_inside_its_transaction_leaves_the_old_day(tmp_path):
    from resources.schemas import validated_tables
    from resources.warehouse import Warehouse

    url = store_url(tmp_path, "warehouse")
    wh = Warehouse(url=url)
    old = typed_day("flights", DAY)
    table = validated_tables["flights"]
    write_versions(wh, "validated_flights", {table: old}, [DAY], "old")
    before = warehouse_snapshot(wh)

    new = old.iloc[: len(old) // 2].assign(dep_delay=999)  # a different version of the day
    new.to_parquet(tmp_path / "new.parquet")
    marker = tmp_path / "marker"
    child = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, url, DAY, str(tmp_path / "new.parquet"), str(marker)],
                             cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.time() + 60
    while not marker.exists():
        assert child.poll() is None and time.time() < deadline, "the writer did not reach its transaction"
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)

    assert warehouse_snapshot(Warehouse(url=url)) == before  # the old version whole and current, no trace of the new
    # re-running the write gives exactly the current rows of a clean run, and keeps the old version
    write_versions(wh, "validated_flights", {table: new}, [DAY], "new")
    clean = Warehouse(url=store_url(tmp_path, "clean"))
    write_versions(clean, "validated_flights", {table: new}, [DAY], "new")
    assert warehouse_snapshot(wh, versions=False) == warehouse_snapshot(clean, versions=False)
    assert wh.versions()["content_hash"].tolist() == ["old", "new"]
    assert sorted(_rows(wh, "validated_flights_history"), key=repr) == before["validated_flights"]  # the old, kept


def test_two_runs_of_the_same_day_at_once_equal_one_run(tmp_path):
    from resources.warehouse import Warehouse

    def env_for(root: Path) -> dict:
        home = make_dagster_home(root / "dagster_home")
        return {**os.environ, "DAGSTER_HOME": str(home), "FLIGHTS_DATA_DIR": str(root / "data"),
                "WAREHOUSE_URL": store_url(root / "data", "warehouse")}

    cmd = [str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m", "pipelines.definitions",
           "--select", "*flight_features", "--partition", DAY]
    shared = env_for(tmp_path / "shared")
    # an existing deployment: the instance and the warehouse exist before the two runs start
    # (two processes creating a fresh SQLite instance at once race in Dagster's own migrations)
    DagsterInstance.from_config(shared["DAGSTER_HOME"]).get_runs()
    assert Warehouse(url=shared["WAREHOUSE_URL"]).engine is not None
    runs = [subprocess.Popen(cmd, env=shared, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    outcomes = [(r.wait(timeout=600), r.stderr.read()[-2000:]) for r in runs]
    assert all(code == 0 for code, _ in outcomes), outcomes
    alone = env_for(tmp_path / "alone")
    assert subprocess.run(cmd, env=alone, cwd=REPO, capture_output=True).returncode == 0
    both = warehouse_snapshot(Warehouse(url=shared["WAREHOUSE_URL"]), versions=False)
    one = warehouse_snapshot(Warehouse(url=alone["WAREHOUSE_URL"]), versions=False)
    assert both == one and len(both["flight_features"]) > 800  # the current versions: as one run makes them
    catalog = Warehouse(url=shared["WAREHOUSE_URL"]).versions()
    current = catalog[catalog["superseded_at"].isna()]
    assert sorted(current["asset"]) == sorted(set(catalog["asset"])) and len(catalog) == 2 * len(current)
    superseded = catalog.loc[catalog["superseded_at"].notna() & (catalog["asset"] == "flight_features"), "version_id"]
    kept = Warehouse(url=shared["WAREHOUSE_URL"]).read_versions(flight_features, {DAY: superseded.iloc[0]})
    assert len(kept) == len(both["flight_features"])  # the first run's version, whole, in the history
