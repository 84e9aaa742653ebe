"""`make demo`: the whole loop on the embedded default, through the real CLI, daemon and sensors.

1. history: ingest, validate and build features for START..TRAIN_END, one CLI run
   (`dg launch --assets`);
2. the first model: `retrain_job` trained up to TRAIN_END (`dg launch --job`), deployed if the
   gate passes;
3. the loop: the Dagster daemon with `replay_clock_sensor` on replays the following days, one per
   tick: each day is ingested, validated, scored and reported in one run (`day_job`); when a report
   crosses its threshold, drift_sensor or performance_sensor requests a retrain and the gate
   decides. It stops once that first sensor-triggered retrain is decided, or after END;
4. the chain: the report that fired and its figures, the retrain run, the gate's reasons, the
   champion now, and where to look.

One line per replayed day. The CLI's and the daemon's own logs go to data/demo/*.log.

    flights-demo [--start 2013-01-01] [--train-end 2013-03-01] [--end 2013-03-31]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from resources.settings import REPO_ROOT, configure_process, settings, subprocess_env

RETRAIN_TRIGGERS = ("drift_sensor", "performance_sensor")
BIN = Path(sys.executable).parent  # the environment's own executables
DG, DAGSTER, DAEMON = str(BIN / "dg"), str(BIN / "dagster"), str(BIN / "dagster-daemon")  # dg runs; dagster starts sensors
WORKSPACE = ["-w", str(REPO_ROOT / "workspace.yaml")]
LOCATION = "flight_delay"  # workspace.yaml
# the daemon's sensors tick as often as Dagster's sensor loop allows (every 5 s); a replayed day
# is ingested as soon as the previous day's runs are done
LOOP_ENV = {"FLIGHTS_SENSOR_INTERVAL_SECONDS": "1", "FLIGHTS_REPLAY_SECONDS_PER_DAY": "1"}
# The demo shows a sensor-triggered retrain within its month: it judges with the thresholds the
# sensors had before they were re-chosen for a year of service (docs/benchmarks.md; with those, the
# first one comes near the end of March), unless the environment sets them. It says so.
DEMO_THRESHOLDS = {"FLIGHTS_DRIFT_SHARE": "0.3", "FLIGHTS_ROC_AUC_DROP": "0.05", "FLIGHTS_RETRAIN_COOLDOWN_DAYS": "7"}
# The first model is tuned as in service (FLIGHTS_TUNING_SECONDS, default 30 s: the model the demo's
# days were chosen with; a shorter budget samples fewer trials, another model, and its first
# degraded day comes weeks later). The sensor's retrain at the end is tuned for 10 s, unless the
# environment sets a budget.
LOOP_TUNING = {"FLIGHTS_TUNING_SECONDS": "10"}
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


class DemoFailed(RuntimeError):
    pass


def clock(started: float) -> str:
    seconds = time.perf_counter() - started
    return f"{int(seconds // 60)} min {seconds % 60:04.1f} s" if seconds >= 60 else f"{seconds:.1f} s"


class Demo:
    def __init__(self, start: str, train_end: str, end: str, logs: Path):
        from dagster import DagsterInstance

        self.start, self.train_end, self.end = start, train_end, end
        self.logs = logs
        logs.mkdir(parents=True, exist_ok=True)
        self.instance = DagsterInstance.get()
        self.ui = settings().dagster_ui_url
        given = subprocess_env()  # what this process's environment already sets
        self.tuning = {k: v for k, v in LOOP_TUNING.items() if k not in given}
        self.thresholds = {k: v for k, v in DEMO_THRESHOLDS.items() if k not in given}

    # --- the CLI steps ---------------------------------------------------------------------

    def cli(self, name: str, args: list[str], extra_env: dict | None = None) -> None:
        """Run a Dagster CLI command; its output goes to data/demo/<name>.log."""
        log = self.logs / f"{name}.log"
        with log.open("w") as out:
            done = subprocess.run(args, cwd=REPO_ROOT, env=subprocess_env({"VIRTUAL_ENV": sys.prefix, **(extra_env or {})}),
                                  stdout=out, stderr=subprocess.STDOUT)
        if done.returncode != 0:
            tail = "\n".join(log.read_text().splitlines()[-25:])
            raise DemoFailed(f"`{' '.join(args[:3])} …` failed (exit {done.returncode}); its log: {log}\n{tail}")

    def newest_run(self, job_name: str):
        from dagster import RunsFilter

        runs = self.instance.get_runs(RunsFilter(job_name=job_name), limit=1)
        return runs[0] if runs else None

    def history(self) -> str:
        import json

        self.cli("history", [DG, "launch", "--assets", "*flight_features", "--partition-range", f"{self.start}...{self.train_end}",
                             "--config-json", json.dumps(QUIET_RUN_CONFIG)])
        run = self.newest_run("__ASSET_JOB")
        days = self.day_metadata("validated_flights", run.run_id)
        rows_in = sum(m.get("rows_in", 0) for m in days.values())
        bad = sum(m.get("rows_quarantined", 0) for m in days.values())
        return (f"{len(days)} days, {rows_in:,} flights in = {rows_in - bad:,} valid + {bad:,} quarantined; "
                f"run {self.ui}/runs/{run.run_id}")

    def first_model(self) -> str:
        import yaml

        config = self.logs / "first_model.yaml"
        config.write_text(yaml.safe_dump({**QUIET_RUN_CONFIG, "ops": {"training_set": {"config": {"end_day": self.train_end}}}}))
        self.cli("first_model", [DG, "launch", "--job", "retrain_job", "-c", str(config)])
        run = self.newest_run("retrain_job")
        trials = self.run_metadata("candidate_model", run.run_id).get("search_trials", "?")
        return f"{self.decision(run.run_id)} (tuned: {trials} search trials within {settings().tuning_seconds:g} s)"

    # --- what the instance holds -----------------------------------------------------------

    def day_metadata(self, asset: str, run_id: str | None = None, after: float = 0) -> dict[str, dict]:
        """The newest materialization's metadata of `asset` per day (of one run, or since `after`)."""
        from dagster import AssetKey, AssetRecordsFilter

        records = self.instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey(asset), after_timestamp=after or None), limit=1000).records
        out: dict[str, dict] = {}
        for record in sorted(records, key=lambda r: r.storage_id):
            m = record.asset_materialization
            if m.partition and (run_id is None or record.run_id == run_id):
                out[m.partition] = {k: v.value for k, v in m.metadata.items()} | {"_run_id": record.run_id}
        return out

    def run_metadata(self, asset: str, run_id: str) -> dict:
        from dagster import AssetKey, AssetRecordsFilter

        records = self.instance.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey(asset)), limit=20).records
        for record in records:
            if record.run_id == run_id:
                return {k: v.value for k, v in record.asset_materialization.metadata.items()}
        return {}

    def decision(self, run_id: str) -> str:
        gate = self.run_metadata("champion_model", run_id)
        if not gate:
            return f"no decision recorded (run {self.ui}/runs/{run_id})"
        reasons = "; ".join(line.lstrip("- ").strip() for line in str(gate.get("reasons", "")).splitlines() if line.strip())
        return (f"candidate v{gate.get('candidate_version')} {gate.get('event')}; champion now {gate.get('champion')}. "
                f"Gate: {reasons}")

    # --- the loop through the daemon -------------------------------------------------------

    def loop(self) -> dict | None:
        """Replay days through the daemon until the first sensor-triggered retrain is decided
        (its run) or END is reported; None if no sensor asked for a retrain."""
        from dagster import DagsterRunStatus, RunsFilter

        self.no_other_daemon()
        from dagster import AssetKey

        built = self.instance.get_materialized_partitions(AssetKey("flight_features"))
        if self.end in built:
            raise DemoFailed(f"this instance already has every day up to {self.end}: nothing left to replay "
                             "(`make clean` starts over; or pass a later --end)")
        if self.thresholds:
            print("the demo's retrain thresholds (quicker than the defaults, to show a retrain within the month): "
                  + ", ".join(f"{k}={v}" for k, v in self.thresholds.items()), flush=True)
        if self.tuning:
            print(f"the sensor's retrain is tuned for {self.tuning['FLIGHTS_TUNING_SECONDS']} s (FLIGHTS_TUNING_SECONDS)",
                  flush=True)
        env = {**LOOP_ENV, **self.thresholds, **self.tuning, "FLIGHTS_REPLAY_END": self.end}
        began = time.time()
        since = datetime.fromtimestamp(began, tz=UTC)
        self.cli("sensor_start", [DAGSTER, "sensor", "start", *WORKSPACE, "replay_clock_sensor"], env)
        daemon_log = (self.logs / "daemon.log").open("w")
        daemon = subprocess.Popen([DAEMON, "run", *WORKSPACE], cwd=REPO_ROOT, env=subprocess_env(env),
                                  stdout=daemon_log, stderr=subprocess.STDOUT, start_new_session=True)
        stopping = None  # the `dagster sensor stop` of the replay clock, once the retrain is requested
        printed: set[str] = set()
        self.since = since
        retrain = None
        print(f"      {'day':<11}{'flights':>8}{'quar.':>7}  {'model':<7}{'drift share':>12}"
              f"{'ROC AUC':>9}{'trailing vs eval':>19}  verdict", flush=True)
        try:
            while True:
                if daemon.poll() is not None:
                    raise DemoFailed(f"the Dagster daemon stopped (exit {daemon.returncode}); its log: {self.logs / 'daemon.log'}")
                failed = self.instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.FAILURE], created_after=since), limit=1)
                if failed:
                    raise DemoFailed(f"run {failed[0].run_id} ({failed[0].job_name}) failed: {self.ui}/runs/{failed[0].run_id}")
                self.print_new_days(began, printed)
                if retrain is None:
                    retrain = next((r for r in self.instance.get_runs(RunsFilter(job_name="retrain_job", created_after=since))
                                    if r.tags.get("trigger") in RETRAIN_TRIGGERS), None)
                    if retrain is not None:
                        print(f"      -> {retrain.tags['trigger']} requested a retrain for {retrain.tags.get('trigger.partition')}: "
                              f"{retrain.tags.get('trigger.reason')}\n         run {self.ui}/runs/{retrain.run_id}", flush=True)
                        # the replay clock waits while the retrain runs: stopped now, it replays nothing after it
                        stopping = subprocess.Popen([DAGSTER, "sensor", "stop", *WORKSPACE, "replay_clock_sensor"],
                                                    cwd=REPO_ROOT, env=subprocess_env(env), stdout=subprocess.DEVNULL,
                                                    stderr=subprocess.DEVNULL)
                else:
                    retrain = self.instance.get_run_by_id(retrain.run_id)
                    if retrain.is_finished:
                        # a day the replay clock started before it was stopped is finished and shown
                        self.wait_for_quiet(began)
                        self.print_new_days(began, printed)
                        return {"run": retrain}
                if retrain is None and self.end in printed:
                    return None
                time.sleep(0.5)
        finally:
            if stopping is None:
                subprocess.run([DAGSTER, "sensor", "stop", *WORKSPACE, "replay_clock_sensor"], cwd=REPO_ROOT,
                               env=subprocess_env(env), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            else:
                stopping.wait()
            self.wait_for_quiet(began)
            os.killpg(daemon.pid, signal.SIGTERM)
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
            daemon_log.close()
            self.instance.wipe_daemon_heartbeats()  # ours stopped: the next demo finds no daemon beating

    def pace(self) -> str:
        """The loop's pace, the demo's own timing line for a replayed day: the time from one day's
        run (day_job) ending to the next one's, the waits for a retrain left out."""
        import statistics

        from dagster import RunsFilter

        def spans(job: str):
            return [(r.start_time, r.end_time) for r in self.instance.get_run_records(RunsFilter(job_name=job, created_after=self.since))
                    if r.start_time and r.end_time]

        ends = sorted(end for _, end in spans("day_job"))
        retrains = spans("retrain_job")
        gaps = [b - a for a, b in zip(ends, ends[1:]) if not any(s < b and e > a for s, e in retrains)]
        if not gaps:
            return "fewer than two days replayed one after the other: no pace"
        return (f"a replayed day every {statistics.median(gaps):.1f} s (median of {len(gaps)}; "
                f"{min(gaps):.1f} … {max(gaps):.1f} s)")

    def no_other_daemon(self) -> None:
        """Two daemons on one instance would both tick the sensors: refuse while another one beats."""
        beats = [b.timestamp for b in self.instance.get_daemon_heartbeats().values()]
        if beats and time.time() - max(beats) < 60:
            raise DemoFailed("a Dagster daemon is already running on this instance (`make ui` / `dagster dev`?): "
                             "stop it first; the demo starts its own daemon and stops it at the end")

    def wait_for_quiet(self, began: float, timeout: float = 120) -> None:
        """Until no run the daemon started is queued or running (nothing is cut off)."""
        from dagster import DagsterRunStatus, RunsFilter

        busy = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
                DagsterRunStatus.STARTED]
        deadline = time.time() + timeout
        while time.time() < deadline and self.instance.get_runs(RunsFilter(statuses=busy), limit=1):
            time.sleep(0.5)

    def print_new_days(self, began: float, printed: set[str]) -> None:
        drift = self.day_metadata("drift_report", after=began)
        performance = self.day_metadata("performance_report", after=began)
        flights = self.day_metadata("validated_flights", after=began)
        for day in sorted(set(drift) & set(performance) - printed):
            d, p, f = drift[day], performance[day], flights.get(day, {})
            verdicts = [v for v, crossed in (("dataset drift", d.get("dataset_drift")),
                                             ("performance degraded", p.get("performance_degraded"))) if crossed]
            print(f"      {day:<11}{f.get('rows_in', 0):>8,}{f.get('rows_quarantined', 0):>7}  "
                  f"v{str(p.get('model_version', '?')):<6}{d.get('drift_share', float('nan')):>12.2f}"
                  f"{p.get('roc_auc', float('nan')):>9.3f}{p.get('trailing_roc_auc', float('nan')):>10.3f} vs "
                  f"{p.get('evaluation_roc_auc', float('nan')):.3f}  {', '.join(verdicts) or 'ok'}", flush=True)
            printed.add(day)

    # --- the chain -------------------------------------------------------------------------

    def chain(self, retrain) -> list[str]:
        tags = retrain.tags
        asset, day = tags.get("trigger.asset"), tags.get("trigger.partition")
        report = self.day_metadata(asset).get(day, {})
        if asset == "drift_report":
            figures = (f"drift share {report.get('drift_share', float('nan')):.2f} >= {report.get('drift_share_threshold')}: "
                       f"{report.get('drifted_columns')} of {report.get('monitored_columns')} columns drifted")
        else:
            figures = (f"trailing ROC AUC {report.get('trailing_roc_auc', float('nan')):.3f} over "
                       f"{report.get('trailing_days')} is {report.get('roc_auc_drop', float('nan')):.3f} below the "
                       f"evaluation ROC AUC {report.get('evaluation_roc_auc', float('nan')):.3f} "
                       f"(threshold {report.get('roc_auc_drop_threshold')})")
        gate = self.run_metadata("champion_model", retrain.run_id)
        dashboard = self.run_metadata("drift_report", report.get("_run_id", "")).get("monitoring_dashboard") or settings().evidently_ui_url
        ui = self.ui
        return [
            f"  the report that fired: {asset} {day} — {figures}",
            f"      {ui}/assets/{asset}?partition={day}",
            f"  the retrain it started:  {retrain.job_name}, {retrain.status.value.lower()}, tagged trigger={tags.get('trigger')}",
            f"      {ui}/runs/{retrain.run_id}",
            f"  the gate:  {self.decision(retrain.run_id)}",
            f"  the champion now:  {gate.get('champion', '?')} (previous: v{gate.get('previous', '?')})",
            "",
            "  where to look (each UI: a `make` target, then the address):",
            f"      Dagster UI, the monitoring group    make ui           {ui}/locations/{LOCATION}/asset-groups/monitoring",
            f"      Dagster UI, the lineage of the day  make ui           {ui}/assets/performance_report?partition={day}",
            f"      monitoring dashboard (Evidently)    make evidently-ui {dashboard}",
            f"      model card (MLflow)                 make mlflow-ui    {gate.get('model_card_url', '')}",
            f"      the candidate's MLflow run          make mlflow-ui    {gate.get('mlflow_run', '')}",
            f"      the provenance chain                flights-provenance {gate.get('candidate_version', '')}",
        ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--start", default="2013-01-01", help="first day of the history")
    parser.add_argument("--train-end", default="2013-03-01", help="the first model is trained up to this day")
    parser.add_argument("--end", default="2013-03-31", help="the loop stops after this day at the latest")
    args = parser.parse_args(argv)
    configure_process()
    started = time.perf_counter()
    demo = Demo(args.start, args.train_end, args.end, settings().data_dir / "demo")
    try:
        print(f"[1/4] history {args.start} … {args.train_end}: ingest, validate (Great Expectations), build features, "
              "one run (dg launch --assets)", flush=True)
        t = time.perf_counter()
        summary = demo.history()
        print(f"      {summary} ({clock(t)})", flush=True)

        print(f"[2/4] the first model: retrain_job on the days up to {args.train_end} (dg launch --job)", flush=True)
        t = time.perf_counter()
        summary = demo.first_model()
        print(f"      {summary} ({clock(t)})", flush=True)

        print(f"[3/4] the loop: the Dagster daemon replays the days after {args.train_end}; replay_clock_sensor runs "
              "each day (day_job: ingest, validate, features, score, drift and performance reports), "
              "drift_sensor / performance_sensor request a retrain "
              f"(stops once one is decided, or after {args.end})", flush=True)
        t = time.perf_counter()
        outcome = demo.loop()
        print(f"      ({clock(t)}; {demo.pace()})", flush=True)

        print("[4/4] the chain", flush=True)
        if outcome is None:
            print(f"  no report crossed its threshold by {args.end}: no retrain was requested "
                  "(thresholds: docs/settings.md, FLIGHTS_DRIFT_SHARE and FLIGHTS_ROC_AUC_DROP)")
        else:
            print("\n".join(demo.chain(outcome["run"])))
    except DemoFailed as exc:
        print(f"\nmake demo failed: {exc}", file=sys.stderr)
        return 1
    print(f"\nmake demo: {clock(started)}; logs in {demo.logs}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
