"""A run whose process died stays STARTED forever unless the daemon's run monitoring fails it:
here the run worker dies with the daemon and the code server that launched it (SIGKILL of their
process group); a run of the same day queued behind it (one run per day partition) starts once
monitoring has failed the dead run at its maximum runtime (`dagster/max_runtime`, short here)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from tests.support import REPO, make_dagster_home, store_url

pytestmark = pytest.mark.e2e

DAY = "2013-01-02"
BIN = Path(sys.executable).parent


def wait_for(condition, what: str, timeout: float = 180):
    deadline = time.time() + timeout
    while not (found := condition()):
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return found


def test_a_run_whose_process_died_is_failed_and_the_run_queued_behind_it_starts(tmp_path):
    home = make_dagster_home(tmp_path / "dagster_home")
    config = (home / "dagster.yaml").read_text()
    assert "poll_interval_seconds: 30" in config
    (home / "dagster.yaml").write_text(config.replace("poll_interval_seconds: 30", "poll_interval_seconds: 1"))
    inherited = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_ARTIFACT_ROOT")}
    env = {**inherited, "DAGSTER_HOME": str(home), "FLIGHTS_DATA_DIR": str(tmp_path / "data"),
           "WAREHOUSE_URL": store_url(tmp_path / "data", "warehouse")}
    workspace = ["-w", str(REPO / "workspace.yaml")]

    def start_daemon():
        return subprocess.Popen([str(BIN / "dagster-daemon"), "run", *workspace], env=env, cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def launch(**tags) -> str:
        out = subprocess.run([str(BIN / "dagster"), "job", "launch", *workspace, "-j", "ingest_job",
                              "--tags", json.dumps({"dagster/partition": DAY, **tags})],
                             env=env, cwd=REPO, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr[-3000:]
        return instance.get_runs(limit=1)[0].run_id

    instance = DagsterInstance.from_config(str(home))
    daemon = start_daemon()
    try:
        # the dead run's limit is what frees the queue: short here (a day's ingestion takes seconds)
        dead = launch(**{"dagster/max_runtime": "5"})
        wait_for(lambda: instance.get_run_by_id(dead).status != DagsterRunStatus.QUEUED, "the run to leave the queue")
        assert instance.get_run_by_id(dead).status in (DagsterRunStatus.STARTING, DagsterRunStatus.STARTED)
        wait_for(lambda: instance.get_run_by_id(dead).status == DagsterRunStatus.STARTED, "the run to start")
        os.killpg(daemon.pid, signal.SIGKILL)  # the daemon, its code server and the run worker: no clean shutdown
        daemon.wait(timeout=30)
        assert instance.get_run_by_id(dead).status == DagsterRunStatus.STARTED  # and nothing left to say otherwise

        behind = launch()  # the same day: queued behind the dead run (one run per day partition)
        assert instance.get_run_by_id(behind).status == DagsterRunStatus.QUEUED
        restarted = time.time()
        daemon = start_daemon()
        wait_for(lambda: instance.get_run_by_id(dead).status == DagsterRunStatus.FAILURE, "monitoring to fail the dead run")
        failed_after = time.time() - restarted
        wait_for(lambda: instance.get_run_by_id(behind).status != DagsterRunStatus.QUEUED, "the queued run to start")
        started_after = time.time() - restarted
        # the dead run failed outside its steps: Dagster's run retries re-execute it (dagster.yaml run_retries)
        retry = wait_for(lambda: instance.get_runs(RunsFilter(tags={"dagster/parent_run_id": dead})), "its retry")
        print(f"\nrecovery after the daemon restart: dead run failed in {failed_after:.1f} s, the queued run left the "
              f"queue in {started_after:.1f} s; retry run {retry[0].run_id[:8]} ({retry[0].status.value})")
        events = [e.message for e in instance.all_logs(dead) if e.message]
        assert any("Exceeded maximum runtime of 5 seconds" in m or "maximum runtime" in m for m in events), events[-5:]
    finally:
        os.killpg(daemon.pid, signal.SIGKILL)
        daemon.wait(timeout=30)
