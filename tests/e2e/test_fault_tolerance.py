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

from tests.support import REPO, make_dagster_home, store_url, typed_day, warehouse_snapshot

DAY = "2013-05-14"

KILLED_WRITER = r"""
import sys, time
import pandas as pd
from resources.schemas import quarantine, validated_tables
from resources.warehouse import Warehouse

url, day, rows_path, marker = sys.argv[1:5]
new = pd.read_parquet(rows_path)
with Warehouse(url=url).replace_partitions() as tx:
    tx.replace(validated_tables["flights"], [day], new)                   # the new day, uncommitted
    tx.replace(quarantine, [day], new.iloc[0:0].reindex(columns=[]), dataset="flights")
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
    with wh.replace_partitions() as tx:
        tx.replace(validated_tables["flights"], [DAY], old)
    before = _rows(wh, "validated_flights")

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

    after = _rows(Warehouse(url=url), "validated_flights")
    assert after == before  # the old version, whole
    # re-running the write gives exactly the rows of a clean run
    with wh.replace_partitions() as tx:
        tx.replace(validated_tables["flights"], [DAY], new)
    clean = Warehouse(url=store_url(tmp_path, "clean"))
    with clean.replace_partitions() as tx:
        tx.replace(validated_tables["flights"], [DAY], new)
    assert _rows(wh, "validated_flights") == _rows(clean, "validated_flights")


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
    both = warehouse_snapshot(Warehouse(url=shared["WAREHOUSE_URL"]))
    one = warehouse_snapshot(Warehouse(url=alone["WAREHOUSE_URL"]))
    assert both == one and len(both["flight_features"]) > 800
