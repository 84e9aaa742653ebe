"""Alerts to a local webhook receiver: a day blocked by validation names the check, the day and
the file; a webhook that refuses connections is retried with backoff, said clearly, and never
fails a run or a sensor tick; a retrain started by a sensor says why."""

import socket
import time

import pytest
from dagster import DagsterInstance, DagsterRun, build_run_status_sensor_context, materialize

from tests.support import SmtpServer, WebhookReceiver, replay_day, tick

ASSETS = ["raw_flights", "raw_weather", "validated_flights", "validated_weather", "flight_features"]
DAY = "2013-03-04"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: connections are refused


def test_a_refusing_webhook_is_retried_with_backoff_and_reported_not_raised(monkeypatch):
    from resources.alerts import Alert, send
    from resources.settings import settings

    port = closed_port()
    monkeypatch.setenv("FLIGHTS_ALERT_WEBHOOK_URL", f"http://127.0.0.1:{port}/services/T0/B0/secret-token")
    monkeypatch.setenv("FLIGHTS_ALERT_RETRIES", "3")
    monkeypatch.setenv("FLIGHTS_ALERT_RETRY_DELAY", "0.1")
    waits = []
    (delivery,) = send(Alert("drift", "Dataset drift on 2013-03-04"), settings(), sleep=waits.append)
    assert not delivery.ok and delivery.attempts == 4 and waits == [0.1, 0.2, 0.4]
    assert f"webhook at 127.0.0.1:{port}" in delivery.error and "refused" in delivery.error.lower()
    assert "secret-token" not in delivery.error

    hook = WebhookReceiver(refuse=2)  # answers 500 twice, then takes it
    monkeypatch.setenv("FLIGHTS_ALERT_WEBHOOK_URL", hook.url)
    try:
        (delivery,) = send(Alert("drift", "Dataset drift on 2013-03-04"), settings(), sleep=waits.append)
        assert delivery.ok and delivery.attempts == 3 and hook.refused == 2 and len(hook.received) == 1
        assert "Dataset drift on 2013-03-04" in hook.texts()[0]
    finally:
        hook.close()


def test_a_blocked_day_is_alerted_with_the_check_the_day_and_the_file(resources, landing_day, monkeypatch):
    from pipelines.definitions import defs
    from pipelines.orchestration.alerts import run_failure_alert

    path = landing_day(DAY, flights=replay_day("flights", DAY).assign(distance="far"))
    instance = DagsterInstance.ephemeral()
    result = materialize([defs.get_assets_def(k) for k in ASSETS], partition_key=DAY, resources=resources,
                         instance=instance, raise_on_error=False)
    assert not result.success
    context = build_run_status_sensor_context(sensor_name="run_failure_alert", dagster_instance=instance,
                                              dagster_run=result.dagster_run, dagster_event=result.get_run_failure_event())

    # the webhook refuses connections: the sensor says so in its log and returns normally
    monkeypatch.setenv("FLIGHTS_ALERT_WEBHOOK_URL", f"http://127.0.0.1:{closed_port()}/hook")
    monkeypatch.setenv("FLIGHTS_ALERT_RETRIES", "1")
    monkeypatch.setenv("FLIGHTS_ALERT_RETRY_DELAY", "0.05")
    started = time.perf_counter()
    run_failure_alert(context.for_run_failure())
    assert time.perf_counter() - started < 5

    hook = WebhookReceiver()
    monkeypatch.setenv("FLIGHTS_ALERT_WEBHOOK_URL", hook.url)
    try:
        run_failure_alert(context.for_run_failure())
        (message,) = hook.received
    finally:
        hook.close()
    text = message["text"]
    assert text.startswith(":red_circle: *Blocked day 2013-03-04: validated_flights check") and "(2013-03-04)" in text
    assert str(path) in text and "distance" in text and f"/runs/{result.run_id}" in text
    assert message["metadata"]["event_payload"]["partition"] == DAY


@pytest.mark.parametrize("tags, said", [
    ({"trigger": "drift_sensor", "trigger.reason": "dataset drift: 9 of 24 monitored columns drifted",
      "trigger.asset": "drift_report", "trigger.partition": "2013-06-11", "trigger.run_id": "abc", "retrain.as_of": "2013-06-11"},
     ["Retrain requested by drift_sensor, as of 2013-06-11", "reason: dataset drift: 9 of 24", "event: drift_report 2013-06-11"]),
    ({"trigger": "manual"}, None),
])
def test_a_retrain_started_by_a_sensor_says_why(tags, said):
    from types import SimpleNamespace

    from pipelines.orchestration.alerts import retrain_alert

    alert = retrain_alert(SimpleNamespace(dagster_run=DagsterRun(job_name="retrain_job", run_id="r1", tags=tags)))
    if said is None:
        assert alert is None  # a person started it
    else:
        assert all(s in alert.text() for s in said) and alert.link.endswith("/runs/r1")


def test_a_slow_mail_host_gets_bounded_ticks_and_each_record_goes_out_once(monkeypatch):
    """A slow SMTP host (0.3 s to accept each message): a tick of `verdict_alert` starts no
    delivery once fewer than FLIGHTS_ALERT_SECONDS of its FLIGHTS_ALERT_TICK_SECONDS remain, and
    never more than FLIGHTS_ALERT_TICK_MAX; its cursor is saved after the last record delivered,
    and the next ticks send the rest: each record once."""
    from dagster import AssetMaterialization, instance_for_test

    from pipelines.orchestration.alerts import verdict_alert

    mail = SmtpServer(delay=0.3)
    monkeypatch.delenv("FLIGHTS_ALERT_WEBHOOK_URL", raising=False)
    for name, value in {"FLIGHTS_SMTP_HOST": "127.0.0.1", "FLIGHTS_SMTP_PORT": str(mail.port),
                        "FLIGHTS_ALERT_EMAIL_TO": "ops@example.org",
                        # deliveries start in the first second of a tick only: at most 4 of 0.3 s
                        "FLIGHTS_ALERT_SECONDS": "3", "FLIGHTS_ALERT_TICK_SECONDS": "4"}.items():
        monkeypatch.setenv(name, value)

    def ticks(instance, cursor):
        """Ticks until one finds nothing to alert on: the number of emails each tick sent."""
        sent = []
        for _ in range(10):
            before = len(mail.messages)
            _, cursor, said = tick(verdict_alert, instance, cursor)
            sent.append(len(mail.messages) - before)
            if said == "nothing to alert on":
                return sent, cursor
        raise AssertionError(f"still alerting after 10 ticks: {sent}")

    def drifted(instance, days):
        for day in days:
            instance.report_runless_asset_event(AssetMaterialization(
                "drift_report", partition=day, metadata={"dataset_drift": True, "drifted_columns": 9, "monitored_columns": 24}))
        return {f"[flights warning] Dataset drift on {day} (drift_report)" for day in days}

    try:
        with instance_for_test() as instance:
            cursor = tick(verdict_alert, instance, None)[1]  # turned on: history is not alerted on
            expected = drifted(instance, [f"2013-05-{d:02d}" for d in range(1, 7)])
            sent, cursor = ticks(instance, cursor)
            assert sent[0] < 6 and sent[-1] == 0 and sum(sent) == 6, sent  # the first tick stopped in time
            subjects = [m["Subject"] for m in mail.messages]
            assert sorted(subjects) == sorted(expected), subjects  # each once

            monkeypatch.setenv("FLIGHTS_ALERT_TICK_SECONDS", "600")
            monkeypatch.setenv("FLIGHTS_ALERT_TICK_MAX", "2")
            expected |= drifted(instance, [f"2013-06-{d:02d}" for d in range(1, 6)])
            assert ticks(instance, cursor)[0] == [2, 2, 1, 0]
            subjects = [m["Subject"] for m in mail.messages]
            assert sorted(subjects) == sorted(expected), subjects
    finally:
        mail.close()
