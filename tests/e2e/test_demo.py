"""`make demo`'s loop, shortened: the history and the first model through the CLI, then the real
Dagster daemon and sensors replay days until a sensor-triggered retrain is decided, and the
chain names the report, the run, the gate and the champion.

The cooldown is 0 here, so the first degraded day triggers the retrain (the demo itself keeps the
demo's own 7 days and replays about ten days)."""

import re
import subprocess
import sys

import pytest
from dagster import AssetKey, DagsterInstance, DagsterRunStatus, RunsFilter

from tests.support import POSTGRES_SERVER, REPO, make_dagster_home

pytestmark = pytest.mark.e2e


def test_the_demo_replays_days_through_the_daemon_until_a_sensor_retrain_is_decided(tmp_path, monkeypatch):
    if POSTGRES_SERVER:
        pytest.skip("the demo is the embedded default; its stores on PostgreSQL are covered by the other e2e tests")
    home = make_dagster_home(tmp_path / "dagster_home")
    env = {"DAGSTER_HOME": str(home), "FLIGHTS_DATA_DIR": str(tmp_path / "data"), "FLIGHTS_RETRAIN_COOLDOWN_DAYS": "0",
           "WAREHOUSE_URL": f"sqlite:///{tmp_path / 'data' / 'warehouse.db'}",
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'data' / 'mlflow.db'}",
           "MLFLOW_ARTIFACT_ROOT": str(tmp_path / "data" / "mlartifacts")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    done = subprocess.run([sys.executable, "-m", "pipelines.commands.demo", "--start", "2013-01-01", "--train-end", "2013-03-01",
                           "--end", "2013-03-06"], cwd=REPO, capture_output=True, text=True, timeout=900)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "Warning" not in done.stderr and "Warning" not in out  # nothing from our code, nothing let through
    assert "candidate v1 promoted" in out  # the first model, through the CLI

    instance = DagsterInstance.from_config(str(home))
    runs = instance.get_runs()
    # the days after the first model came through the daemon: one run a day, ingested to reported (day_job), as a model is deployed from the first day on
    replayed = {r.tags.get("dagster/partition") for r in runs if r.tags.get("trigger") == "replay_clock_sensor"}
    assert {r.job_name for r in runs if r.tags.get("trigger") == "replay_clock_sensor"} == {"day_job"}
    assert not [r for r in runs if r.tags.get("trigger") == "monitor_sensor"]  # no second run for a day
    reported = instance.get_materialized_partitions(AssetKey("performance_report"))
    assert "2013-03-02" in replayed and replayed <= reported and max(replayed) <= "2013-03-06"
    lines = {day: line for day in sorted(reported) for line in out.splitlines() if line.strip().startswith(day)}
    assert set(lines) == reported  # a line per replayed day
    # the demo's own timing line: the pace between days that ran one after the other, no retrain between
    ends = sorted(r.end_time for r in instance.get_run_records(RunsFilter(job_name="day_job")))
    retrains = [(r.start_time, r.end_time) for r in instance.get_run_records(RunsFilter(job_name="retrain_job"))]
    gaps = [b - a for a, b in zip(ends, ends[1:]) if not any(s < b and e > a for s, e in retrains)]
    if gaps:
        assert re.search(rf"a replayed day every \d+\.\d s \(median of {len(gaps)};", out)
    else:
        assert "fewer than two days replayed one after the other: no pace" in out

    # the first one the sensors requested (with no cooldown, a later degraded day may ask again)
    retrain = [r for r in instance.get_runs(RunsFilter(job_name="retrain_job"))
               if r.tags.get("trigger") in ("performance_sensor", "drift_sensor")][-1]
    assert retrain.is_success
    day = retrain.tags["trigger.partition"]
    assert f"requested a retrain for {day}" in out and retrain.run_id in out
    chain = out.split("[4/4] the chain", 1)[1]
    assert f"the report that fired: {retrain.tags['trigger.asset']} {day}" in chain
    assert "candidate v2 " in chain and ("v2 promoted" in chain or "v2 rejected" in chain)
    assert "Gate: candidate ROC AUC" in chain and "asset-groups/monitoring" in chain and "/model_card/" in chain
    # the daemon is gone and the replay clock is off again: nothing runs after the demo
    busy = [DagsterRunStatus.QUEUED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]
    assert not instance.get_runs(RunsFilter(statuses=busy))
    states = {s.name: s.status.value for s in instance.all_instigator_state()}
    assert states.get("replay_clock_sensor") == "STOPPED"
