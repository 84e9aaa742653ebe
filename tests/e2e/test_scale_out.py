"""The scale-out profile: the steps of a CLI run executed by real Celery workers over a real
Redis broker on loopback (FLIGHTS_EXECUTOR=celery), not in the run's process."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance, EventRecordsFilter

from tests.support import REPO

pytestmark = pytest.mark.e2e
DAY = "2013-07-09"
BIN = Path(sys.executable).parent


@pytest.fixture
def broker():
    if shutil.which("redis-server") is None and os.geteuid() != 0:
        pytest.skip("redis-server is not installed (deploy/celery/local_broker.sh installs it as root)")
    out = subprocess.run(["bash", str(REPO / "deploy" / "celery" / "local_broker.sh"), "start"],
                         capture_output=True, text=True, check=True).stdout
    env = dict(part.split("=", 1) for part in out.split()[1:])  # export A=.. B=..
    yield env
    # the broker stays up for other tests; its queues are emptied (the script has its password)
    subprocess.run(["bash", str(REPO / "deploy" / "celery" / "local_broker.sh"), "flush"], capture_output=True)


def test_steps_run_on_the_celery_workers(workdir, broker):
    env = {**os.environ, **broker, "DAGSTER_HOME": str(workdir["home"]), "FLIGHTS_DATA_DIR": str(workdir["data"]),
           "WAREHOUSE_URL": workdir["warehouse_url"], "FLIGHTS_SOURCE": "replay",
           "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "deploy" / "celery")])}
    workers = [
        subprocess.Popen([str(BIN / "celery"), "-A", "dagster_celery.app", "worker", "-Q", "dagster", "--pool", "solo",
                          "--prefetch-multiplier=1", "-n", f"w{i}@%h", "--loglevel", "WARNING"],
                         env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for i in (1, 2)
    ]
    try:
        time.sleep(3)  # the workers connect to the broker
        assert all(w.poll() is None for w in workers), "a Celery worker did not start"
        proc = subprocess.run(
            [str(BIN / "dagster"), "asset", "materialize", "-m", "pipelines.definitions",
             "--select", "*flight_features", "--partition", DAY],
            env={**env, "FLIGHTS_EXECUTOR": "celery"}, cwd=REPO, capture_output=True, text=True, timeout=900,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            try:
                w.wait(timeout=30)
            except subprocess.TimeoutExpired:
                w.kill()

    instance = DagsterInstance.from_config(str(workdir["home"]))
    starts = instance.get_event_records(EventRecordsFilter(event_type=DagsterEventType.STEP_START))
    steps = {r.event_log_entry.dagster_event.step_key for r in starts}
    pids = {r.event_log_entry.dagster_event.pid for r in starts}
    assert steps == {"raw_flights", "raw_weather", "validated_flights", "validated_weather", "flight_features"}
    assert pids and pids <= {w.pid for w in workers}  # every step ran on a Celery worker
    assert instance.get_runs()[0].is_success
    from resources.schemas import flight_features
    from resources.warehouse import Warehouse

    assert Warehouse(url=workdir["warehouse_url"]).count_by_partition(flight_features, [DAY])[DAY] > 800
