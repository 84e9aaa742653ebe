"""A run that fails when launched from the CLI, as CI and cron launch it (`dagster asset
materialize`, which `dg launch` runs too, in the CLI's own process): the real `run_failure_alert`
sensor, evaluated against the instance as the daemon evaluates it, alerts on it once, naming the
day and the file."""

import subprocess
import sys
from pathlib import Path

from dagster import DagsterInstance, build_sensor_context

from tests.support import WebhookReceiver, dagster_cli_env, replay_day, write_landing

BIN = Path(sys.executable).parent
DAY = "2013-05-05"


def test_a_run_failed_from_the_cli_is_alerted(workdir, monkeypatch):
    from pipelines.definitions import defs
    from pipelines.orchestration.alerts import run_failure_alert

    path = workdir["landing"] / f"flights_{DAY}.csv"
    path.write_bytes(b"\x00\xff garbage; not a flights file\n,,,\n")
    write_landing(workdir["landing"], "weather", DAY, replay_day("weather", DAY))
    instance = DagsterInstance.from_config(str(workdir["home"]))
    repository = defs.get_repository_def()

    def evaluate(cursor):  # one tick, through the sensor's own cursor and run filter, in its repository as the daemon has it
        return run_failure_alert.evaluate_tick(build_sensor_context(instance=instance, cursor=cursor, repository_def=repository,
                                                                    repository_name=repository.name))

    cursor = evaluate(None).cursor  # turned on before the run
    proc = subprocess.run([str(BIN / "dagster"), "asset", "materialize", "-m", "pipelines.definitions", "--select", "raw_flights",
                           "--partition", DAY], env=dagster_cli_env(workdir, FLIGHTS_SOURCE="landing", VIRTUAL_ENV=sys.prefix),
                          capture_output=True, text=True, timeout=600, cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode != 0, proc.stdout[-2000:]
    (failed,) = instance.get_runs()
    assert failed.remote_job_origin is None  # run in the CLI's process: no code location of the workspace

    hook = WebhookReceiver()
    monkeypatch.setenv("FLIGHTS_ALERT_WEBHOOK_URL", hook.url)
    try:
        cursor = evaluate(cursor).cursor
        assert evaluate(cursor).dagster_run_reactions == []  # the next tick: nothing again
    finally:
        hook.close()
    (message,) = hook.received
    # the landing file fails raw_flights' blocking check: the alert says the day is blocked, and why
    assert message["text"].startswith(f":red_circle: *Blocked day {DAY}: raw_flights check `batch_is_readable_and_complete` "
                                      f"({DAY}) failed*"), message["text"]
    assert message["metadata"]["event_payload"] == {"job": failed.job_name, "run_id": failed.run_id, "partition": DAY}
    assert str(path) in message["text"] and f"/runs/{failed.run_id}" in message["text"]
