"""A replayed day in the daemon loop, beside its floor from the same run.

- real: a fresh instance and stores; the history up to 2013-03-01 and a first model (untuned:
  the model's own cost is bench_model.py's) through the CLI; then the Dagster daemon, as
  `make demo` starts it (LOOP_ENV: sensors every second, the replay clock on), replays DAYS days:
  each day one `day_job` run (ingest, validate, features, score, drift and performance reports).
  Thresholds no day reaches keep retrains out of the measurement.
- floor: the same daemon set-up (the instance's dagster.yaml, the queued run coordinator, the same
  sensor rule) over a code location of empty assets of the same shape (bench/replay_day_floor.py).

For each: the pace (the median time between one day's run ending and the next one's), and per run
the wait from its request to its start (the run coordinator and the process start) and its
duration (the process's imports and the steps); the real run's step times from the event log.

    python bench/bench_replay_day.py [--days 8]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.bench_data_foundation import write_results  # noqa: E402
from bench.bench_model import _env, _run  # noqa: E402
from pipelines.commands.demo import LOOP_ENV  # noqa: E402

BIN = Path(sys.executable).parent
FIRST_DAY = "2013-03-02"
NO_RETRAIN = {"FLIGHTS_DRIFT_SHARE": "1.0", "FLIGHTS_ROC_AUC_DROP": "1.0"}  # no verdict reaches these


def median(values: list[float]) -> float:
    return round(statistics.median(values), 2) if values else float("nan")


def daemon_until(env: dict, workspace: Path, days: int, log: Path, timeout: float = 900) -> list:
    """Run the daemon until `days` day_job runs succeeded; their run records, by day."""
    from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

    instance = DagsterInstance.from_config(env["DAGSTER_HOME"])
    with log.open("w") as out:
        daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", str(workspace)], cwd=REPO, env=env,
                                  stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.FAILURE]), limit=1):
                raise SystemExit(f"a run failed; the daemon's log: {log}")
            done = instance.get_run_records(RunsFilter(job_name="day_job", statuses=[DagsterRunStatus.SUCCESS]))
            if len(done) >= days:
                return sorted(done, key=lambda r: r.dagster_run.tags["dagster/partition"])
            time.sleep(0.5)
        raise SystemExit(f"{days} days were not replayed in {timeout:.0f} s; the daemon's log: {log}")
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)


def pace(records: list) -> dict:
    ends = [r.end_time for r in records]
    return {
        "days": len(records),
        "pace_s": median([b - a for a, b in zip(ends, ends[1:])]),
        "request_to_start_s": median([r.start_time - r.create_timestamp.timestamp() for r in records]),
        "run_s": median([r.end_time - r.start_time for r in records]),
    }


def step_medians(home: str, records: list) -> dict:
    from dagster import DagsterInstance

    instance = DagsterInstance.from_config(home)
    per_step: dict[str, list[float]] = {}
    for r in records:
        for s in instance.get_run_step_stats(r.dagster_run.run_id):
            per_step.setdefault(s.step_key, []).append(s.end_time - s.start_time)
    return {step: median(times) for step, times in per_step.items()}


def floor(root: Path, days: int) -> dict:
    env = {**_env(root), "FLOOR_FIRST_DAY": FIRST_DAY,
           "FLOOR_LAST_DAY": (date.fromisoformat(FIRST_DAY) + timedelta(days=days - 1)).isoformat()}
    workspace = root / "workspace.yaml"
    workspace.write_text(f"load_from:\n  - python_file:\n      relative_path: {REPO / 'bench' / 'replay_day_floor.py'}\n"
                         f"      working_directory: {REPO}\n      location_name: replay_day_floor\n")
    return pace(daemon_until(env, workspace, days, root / "daemon.log"))


def real(root: Path, days: int) -> dict:
    last = (date.fromisoformat(FIRST_DAY) + timedelta(days=days - 1)).isoformat()
    env = {**_env(root), **LOOP_ENV, **NO_RETRAIN, "FLIGHTS_TUNING_TRIALS": "0",
           "FLIGHTS_REPLAY_START": FIRST_DAY, "FLIGHTS_REPLAY_END": last}
    quiet = json.dumps({"loggers": {"console": {"config": {"log_level": "WARNING"}}}})
    history = _run([str(BIN / "dg"), "launch", "--assets", "*flight_features", "--partition-range",
                    f"2013-01-01...{(date.fromisoformat(FIRST_DAY) - timedelta(days=1)).isoformat()}",
                    "--config-json", quiet], env)
    config = root / "first_model.json"
    config.write_text(json.dumps({"ops": {"training_set": {"config": {"end_day": "2013-03-01"}}}}))
    first_model = _run([str(BIN / "dg"), "launch", "--job", "retrain_job", "-c", str(config)], env)
    workspace = REPO / "workspace.yaml"
    _run([str(BIN / "dagster"), "sensor", "start", "-w", str(workspace), "replay_clock_sensor"], env)
    records = daemon_until(env, workspace, days, root / "daemon.log")
    return {**pace(records), "steps_s": step_medians(env["DAGSTER_HOME"], records),
            "history_s": round(history, 1), "first_model_untuned_s": round(first_model, 1)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=8, help="days replayed by each (the pace is their median)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        figures = {"floor": floor(Path(tmp) / "floor", args.days), "real": real(Path(tmp) / "real", args.days)}
    figures["real_vs_floor"] = round(figures["real"]["pace_s"] / figures["floor"]["pace_s"], 2)
    figures["target_pace_s"] = 10.0
    return write_results("replay_day", figures)


if __name__ == "__main__":
    main()
