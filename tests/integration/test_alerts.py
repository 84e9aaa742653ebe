"""Alerts to a local webhook receiver: a day blocked by validation names the check, the day and
the file; a webhook that refuses connections is retried with backoff, said clearly, and never
fails a run or a sensor tick; a retrain started by a sensor says why."""

import socket
import time

import pytest
from dagster import DagsterInstance, DagsterRun, build_run_status_sensor_context, materialize

from tests.support import WebhookReceiver, replay_day

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
