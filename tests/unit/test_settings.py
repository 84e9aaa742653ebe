"""The settings: one object, read from the environment when asked for; every documented variable
is read and every read variable is documented; a bad value is named."""

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from resources.settings import SettingError, Settings, environment_variables, settings

REPO = Path(__file__).resolve().parents[2]

# every variable, a value other than its default, and the field it must reach
NON_DEFAULT = {
    "FLIGHTS_DATA_DIR": ("/tmp/flights-data", "data_dir", Path("/tmp/flights-data")),
    "FLIGHTS_SOURCE": ("landing", "source", "landing"),
    "FLIGHTS_LANDING_DIR": ("/tmp/landing", "landing_dir", Path("/tmp/landing")),
    "FLIGHTS_LANDING_MAX_BYTES": ("5000", "landing_max_bytes", 5000),
    "FLIGHTS_POSTGRES_URL": ("postgresql+psycopg2://u@db:5432/", "postgres_url", "postgresql+psycopg2://u@db:5432"),
    "WAREHOUSE_URL": ("sqlite:////tmp/w.db", "warehouse_url", "sqlite:////tmp/w.db"),
    "MLFLOW_TRACKING_URI": ("http://127.0.0.1:5000", "mlflow_tracking_uri", "http://127.0.0.1:5000"),
    "MLFLOW_ARTIFACT_ROOT": ("s3://bucket/mlflow", "mlflow_artifact_root", "s3://bucket/mlflow"),
    "MLFLOW_TRACKING_USERNAME": ("pipeline", "mlflow_tracking_username", "pipeline"),
    "FLIGHTS_MLFLOW_UI_URL": ("http://mlflow.internal:5000/", "mlflow_ui_url", "http://mlflow.internal:5000"),
    "FLIGHTS_EVIDENTLY_URL": ("http://127.0.0.1:8001", "evidently_url", "http://127.0.0.1:8001"),
    "FLIGHTS_EVIDENTLY_SECRET": ("write-secret", "evidently_secret", "write-secret"),
    "FLIGHTS_EVIDENTLY_UI_URL": ("https://monitoring.example.org/", "evidently_ui_url", "https://monitoring.example.org"),
    "FLIGHTS_MAX_QUARANTINE_SHARE": ("0.2", "max_quarantine_share", 0.2),
    "FLIGHTS_MIN_WEATHER_COVERAGE": ("0.5", "min_weather_coverage", 0.5),
    "FLIGHTS_MIN_ARRIVALS_SHARE": ("0.8", "min_arrivals_share", 0.8),
    "FLIGHTS_DRIFT_SHARE": ("0.6", "drift_share", 0.6),
    "FLIGHTS_COLUMN_DRIFT_THRESHOLD": ("0.2", "column_drift_threshold", 0.2),
    "FLIGHTS_COLUMN_DRIFT_QUANTILE": ("0.9", "column_drift_quantile", 0.9),
    "FLIGHTS_DRIFT_REFERENCE_ROWS": ("3000", "drift_reference_rows", 3000),
    "FLIGHTS_ROC_AUC_DROP": ("0.1", "roc_auc_drop", 0.1),
    "FLIGHTS_PERFORMANCE_WINDOW_DAYS": ("5", "performance_window_days", 5),
    "FLIGHTS_RETRAIN_COOLDOWN_DAYS": ("3", "retrain_cooldown_days", 3),
    "FLIGHTS_RETRAIN_EVERY_DAYS": ("14", "retrain_every_days", 14),
    "FLIGHTS_SENSOR_INTERVAL_SECONDS": ("5", "sensor_interval_seconds", 5),
    "FLIGHTS_REPLAY_START": ("2013-03-01", "replay_start", "2013-03-01"),
    "FLIGHTS_REPLAY_END": ("2013-03-31", "replay_end", "2013-03-31"),
    "FLIGHTS_REPLAY_SECONDS_PER_DAY": ("10", "replay_seconds_per_day", 10),
    "FLIGHTS_REPLAY_PERIODIC_RETRAIN": ("true", "replay_periodic_retrain", True),
    "FLIGHTS_EXECUTOR": ("multiprocess", "executor", "multiprocess"),
    "FLIGHTS_CELERY_BROKER": ("redis://127.0.0.1:6380/0", "celery_broker", "redis://127.0.0.1:6380/0"),
    "FLIGHTS_CELERY_BACKEND": ("redis://127.0.0.1:6380/1", "celery_backend", "redis://127.0.0.1:6380/1"),
    "FLIGHTS_STORE_RETRIES": ("5", "store_retries", 5),
    "FLIGHTS_STORE_RETRY_DELAY": ("0.5", "store_retry_delay", 0.5),
    "FLIGHTS_TUNING_TRIALS": ("5", "tuning_trials", 5),
    "FLIGHTS_TUNING_SECONDS": ("12.5", "tuning_seconds", 12.5),
    "FLIGHTS_PROMOTION_MODE": ("approve", "promotion_mode", "approve"),
    "FLIGHTS_CHALLENGER_EXPIRY_DAYS": ("3", "challenger_expiry_days", 3),
    "FLIGHTS_SHADOW_DAYS": ("5", "shadow_days", 5),
    "FLIGHTS_CANARY_SHARE": ("0.25", "canary_share", 0.25),
    "FLIGHTS_CANARY_DAYS": ("5", "canary_days", 5),
    "FLIGHTS_ROLLBACK_WATCH_DAYS": ("0", "rollback_watch_days", 0),
    "FLIGHTS_DATA_RETENTION_DAYS": ("30", "data_retention_days", 30.0),
    "FLIGHTS_SERVE_POLL_SECONDS": ("0.5", "serve_poll_seconds", 0.5),
    "FLIGHTS_SERVE_RECORD": ("false", "serve_record", False),
    "FLIGHTS_SERVE_RECORD_SECONDS": ("2.5", "serve_record_seconds", 2.5),
    "FLIGHTS_SERVE_MAX_BODY_MB": ("2.5", "serve_max_body_mb", 2.5),
    "FLIGHTS_SERVE_MAX_ROWS": ("500", "serve_max_rows", 500),
    "FLIGHTS_SERVE_RECORD_MAX_MB": ("8", "serve_record_max_mb", 8.0),
    "FLIGHTS_DAGSTER_UI_URL": ("http://dagster.internal:3000/", "dagster_ui_url", "http://dagster.internal:3000"),
    "FLIGHTS_ALERT_WEBHOOK_URL": ("https://hooks.example.org/T/B/x", "alert_webhook_url", "https://hooks.example.org/T/B/x"),
    "FLIGHTS_SMTP_HOST": ("smtp.example.org", "smtp_host", "smtp.example.org"),
    "FLIGHTS_SMTP_PORT": ("587", "smtp_port", 587),
    "FLIGHTS_SMTP_USERNAME": ("alerts", "smtp_username", "alerts"),
    "FLIGHTS_SMTP_PASSWORD": ("mail-secret", "smtp_password", "mail-secret"),
    "FLIGHTS_SMTP_STARTTLS": ("true", "smtp_starttls", True),
    "FLIGHTS_ALERT_EMAIL_FROM": ("mlops@example.org", "alert_email_from", "mlops@example.org"),
    "FLIGHTS_ALERT_EMAIL_TO": ("a@example.org, b@example.org", "alert_email_to", ("a@example.org", "b@example.org")),
    "FLIGHTS_ALERT_RETRIES": ("1", "alert_retries", 1),
    "FLIGHTS_ALERT_RETRY_DELAY": ("0.2", "alert_retry_delay", 0.2),
    "FLIGHTS_SMTP_SSL": ("true", "smtp_ssl", True),
    "FLIGHTS_SMTP_CA_FILE": ("/etc/ssl/private-ca.pem", "smtp_ca_file", Path("/etc/ssl/private-ca.pem")),
    "FLIGHTS_ALERT_SECONDS": ("5", "alert_seconds", 5.0),
    "FLIGHTS_ALERT_TICK_SECONDS": ("20", "alert_tick_seconds", 20.0),
    "FLIGHTS_ALERT_TICK_MAX": ("5", "alert_tick_max", 5),
    "FLIGHTS_SERVICE_TIMEOUT": ("2.5", "service_timeout", 2.5),
}


def documented() -> set[str]:
    return set(re.findall(r"^\| `([A-Z_]+)` \|", (REPO / "docs" / "settings.md").read_text(), re.M))


def test_every_documented_setting_is_read_and_every_read_one_is_documented():
    schema = {field.alias for field in Settings.model_fields.values()}  # the variable of each field
    assert len(schema) == len(Settings.model_fields)
    assert documented() == schema == set(environment_variables()) == set(NON_DEFAULT)


@pytest.mark.parametrize("name", sorted(NON_DEFAULT))
def test_each_setting_reaches_its_field(name):
    value, field, expected = NON_DEFAULT[name]
    default = getattr(Settings.from_env({}), field)
    assert default != expected  # the test value is not the default: the variable is what changed it
    # the SMTP host needs a recipient: given with every SMTP variable
    needs = {"FLIGHTS_ALERT_EMAIL_TO": "ops@example.org"} if name == "FLIGHTS_SMTP_HOST" else {}
    assert getattr(Settings.from_env({name: value, **needs}), field) == expected


def test_defaults_and_the_profile():
    s = Settings.from_env({"FLIGHTS_DATA_DIR": "/srv/flights"})
    assert s.warehouse_url == "sqlite:////srv/flights/warehouse.db" and s.landing_dir == Path("/srv/flights/landing")
    profile = Settings.from_env({"FLIGHTS_POSTGRES_URL": "postgresql+psycopg2://p@h:1/"})
    assert profile.warehouse_url == "postgresql+psycopg2://p@h:1/warehouse"
    assert profile.mlflow_tracking_uri == "postgresql+psycopg2://p@h:1/mlflow"
    both = Settings.from_env({"FLIGHTS_POSTGRES_URL": "postgresql+psycopg2://p@h:1", "WAREHOUSE_URL": "sqlite:///w.db"})
    assert both.warehouse_url == "sqlite:///w.db"  # the store's own variable wins
    assert Settings.from_env({"FLIGHTS_DRIFT_REFERENCE_ROWS": "10"}).drift_reference_rows == 1001
    served = Settings.from_env({"MLFLOW_TRACKING_URI": "http://127.0.0.1:5050"})
    assert served.mlflow_artifact_root is None  # the server proxies its own artifact store


@pytest.mark.parametrize("env, message", [
    ({"FLIGHTS_DRIFT_SHARE": "abc"}, "FLIGHTS_DRIFT_SHARE='abc' is not a number"),
    ({"FLIGHTS_STORE_RETRIES": "1.5"}, "FLIGHTS_STORE_RETRIES='1.5' is not an integer"),
    ({"FLIGHTS_SOURCE": "ftp"}, "FLIGHTS_SOURCE='ftp': expected one of replay, landing"),
    ({"FLIGHTS_EXECUTOR": "celery"}, "needs FLIGHTS_CELERY_BROKER"),
    ({"FLIGHTS_REPLAY_START": "March"}, "FLIGHTS_REPLAY_START='March' is not a day"),
    ({"FLIGHTS_REPLAY_END": "2013-02-30"}, "FLIGHTS_REPLAY_END='2013-02-30' is not a day"),
    ({"FLIGHTS_REPLAY_START": "2013-03-02", "FLIGHTS_REPLAY_END": "2013-03-01"}, "FLIGHTS_REPLAY_END=2013-03-01 is before"),
    ({"FLIGHTS_REPLAY_PERIODIC_RETRAIN": "maybe"}, "expected true or false"),
    ({"FLIGHTS_SERVE_RECORD": "on"}, "FLIGHTS_SERVE_RECORD='on': expected true or false"),  # 1/0, true/false, yes/no only
    ({"FLIGHTS_SMTP_PORT": "0"}, "FLIGHTS_SMTP_PORT='0' is below its minimum 1"),
    ({"FLIGHTS_SERVE_POLL_SECONDS": "0.01"}, "FLIGHTS_SERVE_POLL_SECONDS='0.01' is below its minimum 0.1"),
    ({"FLIGHTS_PROMOTION_MODE": "manual"}, "FLIGHTS_PROMOTION_MODE='manual': expected one of auto, approve, shadow, canary"),
    ({"FLIGHTS_SMTP_HOST": "smtp.example.org"}, "FLIGHTS_SMTP_HOST is set but FLIGHTS_ALERT_EMAIL_TO names no recipient"),
])
def test_a_bad_value_is_refused_naming_the_variable(env, message):
    with pytest.raises(SettingError, match=re.escape(message)):
        Settings.from_env(env)


def test_only_the_settings_module_reads_the_environment():
    readers = []
    for folder in ("assets", "pipelines", "resources", "served_model"):
        for path in (REPO / folder).rglob("*.py"):
            if path == REPO / "resources" / "settings.py":
                continue
            text = path.read_text()
            if re.search(r"os\.environ|os\.getenv|EnvVar\(", text):
                readers.append(str(path.relative_to(REPO)))
    assert readers == []


def test_links_follow_the_services_and_no_secret_is_shown():
    default = Settings.from_env({})
    assert (default.mlflow_ui_url, default.evidently_ui_url, default.evidently_url) == (
        "http://127.0.0.1:5000", "http://127.0.0.1:8000", None)
    team = Settings.from_env({"MLFLOW_TRACKING_URI": "http://127.0.0.1:5050", "FLIGHTS_EVIDENTLY_URL": "http://127.0.0.1:8001/",
                              "FLIGHTS_EVIDENTLY_SECRET": "write-secret"})
    assert (team.mlflow_ui_url, team.evidently_ui_url) == ("http://127.0.0.1:5050", "http://127.0.0.1:8001")
    assert "write-secret" not in repr(team)
    with pytest.raises(SettingError, match="FLIGHTS_EVIDENTLY_URL"):
        Settings.from_env({"FLIGHTS_EVIDENTLY_URL": "/tmp/workspace"})
    mail = Settings.from_env({"FLIGHTS_SMTP_HOST": "smtp.example.org", "FLIGHTS_ALERT_EMAIL_TO": "ops@example.org",
                              "FLIGHTS_SMTP_PASSWORD": "mail-secret", "FLIGHTS_ALERT_WEBHOOK_URL": "https://hooks.example.org/T/B/hook-secret"})
    assert "mail-secret" not in repr(mail) and "hook-secret" not in repr(mail)


def test_every_bad_variable_is_one_line_of_one_error_and_a_secret_is_not_shown():
    env = {"FLIGHTS_DRIFT_SHARE": "abc", "FLIGHTS_EVIDENTLY_URL": "/tmp/workspace", "FLIGHTS_PROMOTION_MODE": "manual",
           "FLIGHTS_ALERT_WEBHOOK_URL": "ftp://hooks.example.org/T/B/hook-secret", "FLIGHTS_SMTP_PORT": "0"}
    with pytest.raises(SettingError) as refused:
        Settings.from_env(env)
    # in the schema's order; the defaults that follow from a bad variable (the Evidently UI's) add nothing
    assert str(refused.value).splitlines() == [
        "FLIGHTS_EVIDENTLY_URL='/tmp/workspace': expected the http(s) URL of an `evidently ui` service",
        "FLIGHTS_DRIFT_SHARE='abc' is not a number",
        "FLIGHTS_PROMOTION_MODE='manual': expected one of auto, approve, shadow, canary",
        "FLIGHTS_ALERT_WEBHOOK_URL: expected an http(s) URL",
        "FLIGHTS_SMTP_PORT='0' is below its minimum 1 (allowed: 1 ≤ x ≤ 65535)",
    ]
    assert refused.value.__suppress_context__  # no pydantic traceback under it


NUMBERS = {f.alias: (attr, f) for attr, f in Settings.model_fields.items() if f.annotation in (int, float)}


def _limits(field) -> tuple[float | None, float | None]:
    """(lowest allowed, highest allowed) of a number field, from its annotated-types constraints."""
    low = high = None
    for c in field.metadata:
        low = getattr(c, "ge", getattr(c, "gt", low))
        high = getattr(c, "le", getattr(c, "lt", high))
    return low, high


@pytest.mark.parametrize("name", sorted(NUMBERS))
def test_every_number_is_finite_and_bounded_and_refused_naming_its_variable(name):
    attr, field = NUMBERS[name]
    low, high = _limits(field)
    assert low is not None and high is not None, f"{name} has no bounds"
    bad = ["nan", "inf", "-inf", "NaN", "Infinity"] if field.annotation is float else ["inf", "nan"]
    bad += [repr(low - (1 if field.annotation is int else 0.01)), repr(high * 2 + 1)]
    for value in bad:
        with pytest.raises(SettingError) as refused:
            Settings.from_env({name: value})
        assert str(refused.value).startswith(f"{name}='{value}' ") and "\n" not in str(refused.value), value
    assert low <= getattr(Settings.from_env({}), attr) <= high  # the default is allowed


@pytest.mark.parametrize("env, message", [
    ({"FLIGHTS_SERVE_POLL_SECONDS": "inf"}, "FLIGHTS_SERVE_POLL_SECONDS='inf' is not a finite number (allowed: 0.1 ≤ x ≤ 3600)"),
    ({"FLIGHTS_DATA_RETENTION_DAYS": "nan"}, "FLIGHTS_DATA_RETENTION_DAYS='nan' is not a finite number (allowed: 0 ≤ x ≤ 36500)"),
    ({"FLIGHTS_ROC_AUC_DROP": "-0.05"}, "FLIGHTS_ROC_AUC_DROP='-0.05' is not above 0 (allowed: 0 < x ≤ 1)"),
    ({"FLIGHTS_ROC_AUC_DROP": "0"}, "FLIGHTS_ROC_AUC_DROP='0' is not above 0"),
    ({"FLIGHTS_MAX_QUARANTINE_SHARE": "7"}, "FLIGHTS_MAX_QUARANTINE_SHARE='7' is above its maximum 1 (allowed: 0 ≤ x ≤ 1)"),
    ({"FLIGHTS_SMTP_PORT": "70000"}, "FLIGHTS_SMTP_PORT='70000' is above its maximum 65535"),
    ({"FLIGHTS_STORE_RETRY_DELAY": "1e400"}, "FLIGHTS_STORE_RETRY_DELAY='1e400' is not a finite number"),
    ({"FLIGHTS_STORE_RETRIES": "inf"}, "FLIGHTS_STORE_RETRIES='inf' is not an integer"),
])
def test_a_number_that_cannot_work_is_refused(env, message):
    with pytest.raises(SettingError) as refused:
        Settings.from_env(env)
    assert str(refused.value) == message or str(refused.value).startswith(message)


def test_the_documented_ranges_are_the_schemas():
    from resources.settings import bounds

    rows = {m[1]: m[2].strip() for m in re.finditer(r"^\| `([A-Z_]+)` \|.*\|([^|]*)\|$", (REPO / "docs" / "settings.md").read_text(), re.M)}
    for field in Settings.model_fields.values():
        expected = f"`{bounds(field)}`" if field.alias in NUMBERS else ""
        assert rows[field.alias] == expected, field.alias


def test_checks_across_variables_report_every_problem():
    env = {"FLIGHTS_EXECUTOR": "celery", "FLIGHTS_REPLAY_START": "2013-03-02", "FLIGHTS_REPLAY_END": "2013-03-01",
           "FLIGHTS_SMTP_HOST": "smtp.example.org"}
    with pytest.raises(SettingError) as refused:
        Settings.from_env(env)
    assert [line.split()[0] for line in str(refused.value).splitlines()] == [
        "FLIGHTS_EXECUTOR=celery", "FLIGHTS_REPLAY_END=2013-03-01", "FLIGHTS_SMTP_HOST"]


def test_variables_are_read_by_their_exact_names():
    s = Settings.from_env({"WAREHOUSE_URL": "sqlite:////tmp/w.db", "FLIGHTS_WAREHOUSE_URL": "sqlite:////tmp/other.db",
                           "flights_drift_share": "0.9", "drift_share": "0.9", "FLIGHTS_Drift_Share": "0.9"})
    assert s.warehouse_url == "sqlite:////tmp/w.db"  # the alias, not FLIGHTS_ + the field's name
    assert s.drift_share == 0.45  # neither another case nor the field's name
    assert Settings.from_env({"MLFLOW_TRACKING_USERNAME": "pipeline"}).mlflow_tracking_username == "pipeline"


def test_defaults_follow_the_settings_they_derive_from():
    s = Settings.from_env({"FLIGHTS_CELERY_BROKER": "redis://broker:6379/0", "MLFLOW_TRACKING_URI": "https://mlflow.example.org/",
                           "FLIGHTS_DATA_DIR": "/srv/flights", "FLIGHTS_POSTGRES_URL": "postgresql+psycopg2://u@db:5432//"})
    assert s.celery_backend == "redis://broker:6379/0"  # the broker
    assert (s.mlflow_ui_url, s.mlflow_artifact_root) == ("https://mlflow.example.org", None)  # the tracking server
    assert s.warehouse_url == "postgresql+psycopg2://u@db:5432/warehouse" and s.landing_dir == Path("/srv/flights/landing")
    local = Settings.from_env({"FLIGHTS_DATA_DIR": "/srv/flights", "FLIGHTS_CELERY_BROKER": "redis://b/0", "FLIGHTS_CELERY_BACKEND": "redis://b/1"})
    assert (local.mlflow_artifact_root, local.mlflow_tracking_uri) == ("/srv/flights/mlartifacts", "sqlite:////srv/flights/mlflow.db")
    assert local.celery_backend == "redis://b/1"  # given, a derived setting is what it says


def test_a_blank_variable_is_unset_and_values_are_trimmed():
    s = Settings.from_env({"FLIGHTS_DRIFT_SHARE": "  ", "FLIGHTS_EXECUTOR": "", "FLIGHTS_SMTP_PORT": " 587 ", "FLIGHTS_SOURCE": " landing ",
                           "FLIGHTS_ALERT_EMAIL_TO": " a@example.org , ,b@example.org ", "FLIGHTS_SERVE_RECORD": " No "})
    assert (s.drift_share, s.executor, s.smtp_port, s.source) == (0.45, "in_process", 587, "landing")
    assert (s.alert_email_to, s.serve_record) == (("a@example.org", "b@example.org"), False)


def test_the_process_environment_is_read_at_each_call_into_a_frozen_object(monkeypatch):
    monkeypatch.setenv("FLIGHTS_DRIFT_SHARE", "0.45")
    first = settings()
    monkeypatch.setenv("FLIGHTS_DRIFT_SHARE", "0.55")
    assert (first.drift_share, settings().drift_share) == (0.45, 0.55)
    with pytest.raises(ValidationError, match="frozen"):
        first.drift_share = 0.1
