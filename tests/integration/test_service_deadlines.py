"""Every call to a service has a deadline (FLIGHTS_SERVICE_TIMEOUT): an Evidently service, an
MLflow tracking server, an alert webhook and an SMTP server that take the connection and never
answer fail the call with a message that names the service and the deadline, never a secret; the
client hangs up (the hanging server did not have to close the connection itself)."""

import pytest

from tests.support import HangingServer

SECRET = "service-secret-5e7a"


@pytest.fixture
def hanging(monkeypatch):
    server = HangingServer(hold=20)  # a client without a deadline fails after 20 s, not never
    monkeypatch.setenv("FLIGHTS_SERVICE_TIMEOUT", "0.5")
    yield server
    server.close()


def test_a_hanging_evidently_service_fails_the_upload_within_its_deadline(hanging, monkeypatch):
    from resources.monitoring_workspace import MonitoringUnavailable, MonitoringWorkspace

    monkeypatch.setenv("FLIGHTS_EVIDENTLY_URL", hanging.url)
    monkeypatch.setenv("FLIGHTS_EVIDENTLY_SECRET", SECRET)
    monkeypatch.setenv("FLIGHTS_STORE_RETRIES", "1")
    monkeypatch.setenv("FLIGHTS_STORE_RETRY_DELAY", "0.1")
    with pytest.raises(MonitoringUnavailable) as failed:
        MonitoringWorkspace().project_url()
    assert str(failed.value) == (f"Evidently UI service {hanging.url} did not answer within 0.5 s "
                                 "(FLIGHTS_SERVICE_TIMEOUT), 2 attempts")
    assert hanging.accepted == 2 and hanging.held_to_the_end == 0


def test_a_hanging_mlflow_tracking_server_fails_the_call_within_its_deadline(hanging, monkeypatch):
    from resources.registry.store import RegistryStore, RegistryUnavailable

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "pipeline")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", SECRET)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # the step's retry policy is the retry layer
    with pytest.raises(RegistryUnavailable) as failed:
        RegistryStore(tracking_uri=hanging.url).client.search_registered_models()
    # MLflow's client takes whole seconds: 0.5 s is 1 s
    assert str(failed.value) == (f"MLflow tracking store {hanging.url} did not answer within 1 s "
                                 "(search_registered_models; FLIGHTS_SERVICE_TIMEOUT)")
    assert hanging.accepted == 1 and hanging.held_to_the_end == 0


def test_a_hanging_webhook_and_smtp_server_give_up_within_the_deadline(hanging, monkeypatch):
    from resources.alerts import Alert, send

    monkeypatch.setenv("FLIGHTS_ALERT_WEBHOOK_URL", f"{hanging.url}/services/T0/B0/{SECRET}")
    monkeypatch.setenv("FLIGHTS_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("FLIGHTS_SMTP_PORT", str(hanging.port))
    monkeypatch.setenv("FLIGHTS_SMTP_PASSWORD", SECRET)
    monkeypatch.setenv("FLIGHTS_ALERT_EMAIL_TO", "ops@example.org")
    monkeypatch.setenv("FLIGHTS_ALERT_RETRIES", "1")
    monkeypatch.setenv("FLIGHTS_ALERT_RETRY_DELAY", "0.1")
    webhook, email = send(Alert("drift", "Dataset drift on 2013-03-04"))
    said = "no answer within 0.5 s (FLIGHTS_SERVICE_TIMEOUT, FLIGHTS_ALERT_SECONDS)"
    assert (webhook.ok, webhook.attempts, webhook.error) == (False, 2, f"webhook at 127.0.0.1:{hanging.port}: {said}")
    assert (email.ok, email.attempts, email.error) == (False, 2, f"SMTP 127.0.0.1:{hanging.port}: {said}")
    assert hanging.accepted == 4 and hanging.held_to_the_end == 0
