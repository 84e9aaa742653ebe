"""The Dagster daemon killed and restarted while the drift sensor has pending events: no
retrain is lost, none is duplicated (the sensor's cursor and run keys, kept by the instance)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import AssetKey, AssetMaterialization, DagsterInstance

from tests.support import REPO, make_dagster_home

pytestmark = pytest.mark.e2e


def drifted(instance, day):
    instance.report_runless_asset_event(AssetMaterialization(
        "drift_report", partition=day,
        metadata={"dataset_drift": True, "drift_share": 0.6, "drifted_columns": 11, "monitored_columns": 19,
                  "drift_share_threshold": 0.3}))


def sensor_cursor(instance) -> str | None:
    for state in instance.all_instigator_state():
        if state.name == "drift_sensor" and state.instigator_data is not None:
            return state.instigator_data.cursor
    return None


def wait_for(condition, what: str, timeout: float = 120):
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def test_daemon_killed_and_restarted_loses_and_repeats_no_retrain(tmp_path):
    home = make_dagster_home(tmp_path / "dagster_home")
    config = (home / "dagster.yaml").read_text()
    assert "max_concurrent_runs: 2" in config
    config = config.replace("max_concurrent_runs: 2", "max_concurrent_runs: 0")
    (home / "dagster.yaml").write_text(config)  # runs stay queued: this test is about the requests
    env = {**os.environ, "DAGSTER_HOME": str(home), "FLIGHTS_DATA_DIR": str(tmp_path / "data"),
           "WAREHOUSE_URL": f"sqlite:///{tmp_path / 'data' / 'warehouse.db'}", "FLIGHTS_SENSOR_INTERVAL_SECONDS": "1",
           "FLIGHTS_RETRAIN_COOLDOWN_DAYS": "7"}  # the cooldown the days below count with
    daemon_cmd = [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(REPO / "workspace.yaml")]

    def start():
        return subprocess.Popen(daemon_cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)

    def kill(daemon):
        os.killpg(daemon.pid, signal.SIGKILL)  # the daemon and its code server, no clean shutdown
        daemon.wait(timeout=30)

    instance = DagsterInstance.from_config(str(home))
    daemon = start()
    try:
        wait_for(lambda: sensor_cursor(instance) is not None, "the drift sensor's first tick")
        drifted(instance, "2013-03-01")
        time.sleep(0.5)
        kill(daemon)  # maybe before, maybe after the tick that saw 03-01
        drifted(instance, "2013-03-10")  # 9 days later: a retrain of its own
        drifted(instance, "2013-03-12")  # within the 7-day cooldown of 03-10: none
        daemon = start()
        last = instance.fetch_materializations(AssetKey("drift_report"), limit=1).records[0].storage_id
        wait_for(lambda: sensor_cursor(instance) == str(last), "the restarted daemon to reach the last report")
        kill(daemon)
        daemon = start()  # and once more, with nothing pending
        time.sleep(4)
    finally:
        kill(daemon)

    runs = instance.get_runs()
    requested = sorted((r.tags.get("trigger.partition"), r.job_name, r.tags.get("dagster/run_key")) for r in runs)
    assert requested == [("2013-03-01", "retrain_job", "drift_sensor:2013-03-01"),
                         ("2013-03-10", "retrain_job", "drift_sensor:2013-03-10")]
