"""The settings of the pipeline: one typed object, built from the environment when asked for.

`settings()` reads the environment each time it is called (nothing is read at import), so a
process, a test or an operator CLI sees the variables it runs with. This is the only module of
`assets/`, `pipelines/` and `resources/` that reads the environment; every variable is listed in
docs/settings.md, and `tests/unit/test_settings.py` checks that the two agree.

Per-run overrides of the thresholds stay in the Launchpad (asset config): a config value of
`None` means "the setting".
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

REPO_ROOT = Path(__file__).resolve().parent.parent

# Telemetry of every library the pipeline runs, off; applied by `configure_process()`.
TELEMETRY_OFF = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",  # Evidently
    "GX_ANALYTICS_ENABLED": "False",
    "DAGSTER_DISABLE_TELEMETRY": "1",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


# MLflow's http client retries an unreachable server 7 times with exponential backoff (minutes);
# the step's retry policy (FLIGHTS_STORE_RETRIES) is the pipeline's retry layer, so the client
# gives up after two quick tries and the failure names the server. Set either to override.
STORE_CLIENT_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}


PROMOTION_MODES = ("auto", "approve", "shadow")


class SettingError(ValueError):
    """An environment variable holds a value the pipeline cannot use."""


def _text(env: Mapping[str, str], name: str, default: str | None) -> str | None:
    value = (env.get(name) or "").strip()
    return value or default


def _number(env: Mapping[str, str], name: str, default: float, kind=float, low: float | None = None):
    raw = _text(env, name, None)
    if raw is None:
        return kind(default)
    try:
        value = kind(raw)
    except ValueError:
        raise SettingError(f"{name}={raw!r} is not {'an integer' if kind is int else 'a number'}") from None
    if low is not None and value < low:
        raise SettingError(f"{name}={raw!r} is below its minimum {low}")
    return value


def _flag(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    raw = (_text(env, name, "true" if default else "false") or "").lower()
    if raw not in ("1", "true", "yes", "0", "false", "no"):
        raise SettingError(f"{name}={raw!r}: expected true or false")
    return raw in ("1", "true", "yes")


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = _text(env, name, default)
    if value not in allowed:
        raise SettingError(f"{name}={value!r}: expected one of {', '.join(allowed)}")
    return value


def _path(env: Mapping[str, str], name: str, default: Path) -> Path:
    value = _text(env, name, None)
    return Path(value).expanduser().resolve() if value else default


@dataclass(frozen=True)
class Settings:
    """Every setting of the pipeline; field docs name the environment variable."""

    data_dir: Path  # FLIGHTS_DATA_DIR: generated stores (default data/)
    source: Literal["replay", "landing"]  # FLIGHTS_SOURCE
    landing_dir: Path  # FLIGHTS_LANDING_DIR
    postgres_url: str | None  # FLIGHTS_POSTGRES_URL: a server URL; every store on it
    warehouse_url: str  # WAREHOUSE_URL
    mlflow_tracking_uri: str  # MLFLOW_TRACKING_URI
    mlflow_artifact_root: str | None  # MLFLOW_ARTIFACT_ROOT (None: the tracking server's own, proxied)
    mlflow_tracking_username: str | None  # MLFLOW_TRACKING_USERNAME (the password: MLflow reads it itself)
    mlflow_ui_url: str  # FLIGHTS_MLFLOW_UI_URL: where links to runs, versions and model cards point
    # monitoring service
    evidently_url: str | None  # FLIGHTS_EVIDENTLY_URL: an `evidently ui` service (None: a local workspace folder)
    evidently_secret: str | None = field(repr=False)  # FLIGHTS_EVIDENTLY_SECRET: the service's write secret
    evidently_ui_url: str  # FLIGHTS_EVIDENTLY_UI_URL: where links to snapshots point
    # data quality
    max_quarantine_share: float  # FLIGHTS_MAX_QUARANTINE_SHARE
    min_weather_coverage: float  # FLIGHTS_MIN_WEATHER_COVERAGE
    # monitoring
    drift_share: float  # FLIGHTS_DRIFT_SHARE
    column_drift_threshold: float  # FLIGHTS_COLUMN_DRIFT_THRESHOLD (0 = calibrated)
    column_drift_quantile: float  # FLIGHTS_COLUMN_DRIFT_QUANTILE
    drift_reference_rows: int  # FLIGHTS_DRIFT_REFERENCE_ROWS (kept above 1000)
    roc_auc_drop: float  # FLIGHTS_ROC_AUC_DROP
    performance_window_days: int  # FLIGHTS_PERFORMANCE_WINDOW_DAYS
    # retraining and the replay clock
    retrain_cooldown_days: int  # FLIGHTS_RETRAIN_COOLDOWN_DAYS
    retrain_every_days: int  # FLIGHTS_RETRAIN_EVERY_DAYS
    sensor_interval_seconds: int  # FLIGHTS_SENSOR_INTERVAL_SECONDS
    replay_start: str  # FLIGHTS_REPLAY_START
    replay_end: str  # FLIGHTS_REPLAY_END
    replay_seconds_per_day: int  # FLIGHTS_REPLAY_SECONDS_PER_DAY
    replay_periodic_retrain: bool  # FLIGHTS_REPLAY_PERIODIC_RETRAIN
    # execution
    executor: Literal["in_process", "multiprocess", "celery"]  # FLIGHTS_EXECUTOR
    celery_broker: str | None  # FLIGHTS_CELERY_BROKER
    celery_backend: str | None  # FLIGHTS_CELERY_BACKEND (default: the broker)
    store_retries: int  # FLIGHTS_STORE_RETRIES
    store_retry_delay: float  # FLIGHTS_STORE_RETRY_DELAY (seconds)
    # training
    tuning_trials: int  # FLIGHTS_TUNING_TRIALS: fits a retrain's search may make in all (windows + tuning; 0: no tuning)
    tuning_seconds: float  # FLIGHTS_TUNING_SECONDS: the tuning stops drawing trials after this long
    # deployment
    promotion_mode: Literal["auto", "approve", "shadow"]  # FLIGHTS_PROMOTION_MODE
    challenger_expiry_days: int  # FLIGHTS_CHALLENGER_EXPIRY_DAYS (replayed days a challenger may wait)
    shadow_days: int  # FLIGHTS_SHADOW_DAYS (labelled days a shadow challenger is judged on)
    # data versions
    data_retention_days: float  # FLIGHTS_DATA_RETENTION_DAYS: superseded versions kept this long (unless a model uses them)
    # serving
    serve_poll_seconds: float  # FLIGHTS_SERVE_POLL_SECONDS: how often serving checks the `champion` alias
    serve_record: bool  # FLIGHTS_SERVE_RECORD: served requests go to the warehouse
    serve_record_seconds: float  # FLIGHTS_SERVE_RECORD_SECONDS: the recorder's batch interval
    # alerts
    dagster_ui_url: str  # FLIGHTS_DAGSTER_UI_URL: where alerts' links to runs point
    alert_webhook_url: str | None = field(repr=False)  # FLIGHTS_ALERT_WEBHOOK_URL (a Slack URL holds a secret)
    smtp_host: str | None  # FLIGHTS_SMTP_HOST (unset: no email)
    smtp_port: int  # FLIGHTS_SMTP_PORT
    smtp_username: str | None  # FLIGHTS_SMTP_USERNAME
    smtp_password: str | None = field(repr=False)  # FLIGHTS_SMTP_PASSWORD
    smtp_starttls: bool  # FLIGHTS_SMTP_STARTTLS
    alert_email_from: str  # FLIGHTS_ALERT_EMAIL_FROM
    alert_email_to: tuple[str, ...]  # FLIGHTS_ALERT_EMAIL_TO (comma-separated)
    alert_retries: int  # FLIGHTS_ALERT_RETRIES
    alert_retry_delay: float  # FLIGHTS_ALERT_RETRY_DELAY (seconds, doubled each retry)

    def __post_init__(self):
        if self.smtp_host and not self.alert_email_to:
            raise SettingError("FLIGHTS_SMTP_HOST is set but FLIGHTS_ALERT_EMAIL_TO names no recipient")
        if self.alert_webhook_url and not self.alert_webhook_url.startswith(("http://", "https://")):
            raise SettingError("FLIGHTS_ALERT_WEBHOOK_URL: expected an http(s) URL")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        data = _path(env, "FLIGHTS_DATA_DIR", REPO_ROOT / "data")
        server = (_text(env, "FLIGHTS_POSTGRES_URL", "") or "").rstrip("/") or None

        def on_server(database: str) -> str | None:
            return f"{server}/{database}" if server else None

        tracking_uri = _text(env, "MLFLOW_TRACKING_URI", None) or on_server("mlflow") or f"sqlite:///{data / 'mlflow.db'}"
        served = tracking_uri.startswith(("http://", "https://"))
        evidently_url = (_text(env, "FLIGHTS_EVIDENTLY_URL", None) or "").rstrip("/") or None
        if evidently_url and not evidently_url.startswith(("http://", "https://")):
            raise SettingError(f"FLIGHTS_EVIDENTLY_URL={evidently_url!r}: expected the http(s) URL of an `evidently ui` service")
        executor = _choice(env, "FLIGHTS_EXECUTOR", "in_process", ("in_process", "multiprocess", "celery"))
        broker = _text(env, "FLIGHTS_CELERY_BROKER", None)
        if executor == "celery" and broker is None:
            raise SettingError("FLIGHTS_EXECUTOR=celery needs FLIGHTS_CELERY_BROKER (e.g. `eval \"$(make -s broker-up)\"`)")
        from datetime import date

        replay = {"FLIGHTS_REPLAY_START": _text(env, "FLIGHTS_REPLAY_START", "2013-01-01"),
                  "FLIGHTS_REPLAY_END": _text(env, "FLIGHTS_REPLAY_END", "2013-12-31")}
        for name, value in replay.items():
            try:
                date.fromisoformat(value)
            except ValueError:
                raise SettingError(f"{name}={value!r} is not a day (YYYY-MM-DD)") from None
        replay_start, replay_end = replay.values()
        if replay_end < replay_start:
            raise SettingError(f"FLIGHTS_REPLAY_END={replay_end} is before FLIGHTS_REPLAY_START={replay_start}")
        return cls(
            data_dir=data,
            source=_choice(env, "FLIGHTS_SOURCE", "replay", ("replay", "landing")),
            landing_dir=_path(env, "FLIGHTS_LANDING_DIR", data / "landing"),
            postgres_url=server,
            warehouse_url=_text(env, "WAREHOUSE_URL", None) or on_server("warehouse") or f"sqlite:///{data / 'warehouse.db'}",
            mlflow_tracking_uri=tracking_uri,
            # a tracking server keeps (proxies) the artifacts itself: clients name no folder
            mlflow_artifact_root=_text(env, "MLFLOW_ARTIFACT_ROOT", None) or (None if served else str(data / "mlartifacts")),
            mlflow_tracking_username=_text(env, "MLFLOW_TRACKING_USERNAME", None),
            # the tracking server serves its UI; a local store is shown by `make mlflow-ui` on port 5000
            mlflow_ui_url=(_text(env, "FLIGHTS_MLFLOW_UI_URL", None) or (tracking_uri if served else "http://127.0.0.1:5000")).rstrip("/"),
            evidently_url=evidently_url,
            evidently_secret=_text(env, "FLIGHTS_EVIDENTLY_SECRET", None),
            # a service serves its own UI; a local workspace is shown by `make evidently-ui` on port 8000
            evidently_ui_url=(_text(env, "FLIGHTS_EVIDENTLY_UI_URL", None) or evidently_url or "http://127.0.0.1:8000").rstrip("/"),
            max_quarantine_share=_number(env, "FLIGHTS_MAX_QUARANTINE_SHARE", 0.10, low=0),
            min_weather_coverage=_number(env, "FLIGHTS_MIN_WEATHER_COVERAGE", 0.90, low=0),
            # 0.3, not Evidently's 0.5, because the column thresholds are calibrated: with them
            # the days of March-May 2013 showed shares from 0 to 0.47 (median 0.05)
            drift_share=_number(env, "FLIGHTS_DRIFT_SHARE", 0.3, low=0),
            column_drift_threshold=_number(env, "FLIGHTS_COLUMN_DRIFT_THRESHOLD", 0.0, low=0),
            column_drift_quantile=_number(env, "FLIGHTS_COLUMN_DRIFT_QUANTILE", 0.95, low=0),
            # above 1000 rows Evidently keeps the same drift methods as on the full window
            drift_reference_rows=max(1001, _number(env, "FLIGHTS_DRIFT_REFERENCE_ROWS", 5000, int)),
            roc_auc_drop=_number(env, "FLIGHTS_ROC_AUC_DROP", 0.05),
            performance_window_days=_number(env, "FLIGHTS_PERFORMANCE_WINDOW_DAYS", 3, int, low=1),
            retrain_cooldown_days=_number(env, "FLIGHTS_RETRAIN_COOLDOWN_DAYS", 7, int, low=0),
            retrain_every_days=_number(env, "FLIGHTS_RETRAIN_EVERY_DAYS", 7, int, low=1),
            sensor_interval_seconds=_number(env, "FLIGHTS_SENSOR_INTERVAL_SECONDS", 30, int, low=1),
            replay_start=replay_start,
            replay_end=replay_end,
            replay_seconds_per_day=_number(env, "FLIGHTS_REPLAY_SECONDS_PER_DAY", 60, int, low=1),
            replay_periodic_retrain=_flag(env, "FLIGHTS_REPLAY_PERIODIC_RETRAIN"),
            executor=executor,
            celery_broker=broker,
            celery_backend=_text(env, "FLIGHTS_CELERY_BACKEND", None) or broker,
            store_retries=_number(env, "FLIGHTS_STORE_RETRIES", 3, int, low=0),
            store_retry_delay=_number(env, "FLIGHTS_STORE_RETRY_DELAY", 2.0, low=0),
            tuning_trials=_number(env, "FLIGHTS_TUNING_TRIALS", 20, int, low=0),
            tuning_seconds=_number(env, "FLIGHTS_TUNING_SECONDS", 30.0, low=0),
            promotion_mode=_choice(env, "FLIGHTS_PROMOTION_MODE", "auto", PROMOTION_MODES),
            challenger_expiry_days=_number(env, "FLIGHTS_CHALLENGER_EXPIRY_DAYS", 7, int, low=1),
            shadow_days=_number(env, "FLIGHTS_SHADOW_DAYS", 3, int, low=1),
            data_retention_days=_number(env, "FLIGHTS_DATA_RETENTION_DAYS", 90.0, low=0),
            serve_poll_seconds=_number(env, "FLIGHTS_SERVE_POLL_SECONDS", 2.0, low=0.1),
            serve_record=_flag(env, "FLIGHTS_SERVE_RECORD", default=True),
            serve_record_seconds=_number(env, "FLIGHTS_SERVE_RECORD_SECONDS", 1.0, low=0.05),
            dagster_ui_url=(_text(env, "FLIGHTS_DAGSTER_UI_URL", None) or "http://127.0.0.1:3000").rstrip("/"),
            alert_webhook_url=_text(env, "FLIGHTS_ALERT_WEBHOOK_URL", None),
            smtp_host=_text(env, "FLIGHTS_SMTP_HOST", None),
            smtp_port=_number(env, "FLIGHTS_SMTP_PORT", 25, int, low=1),
            smtp_username=_text(env, "FLIGHTS_SMTP_USERNAME", None),
            smtp_password=_text(env, "FLIGHTS_SMTP_PASSWORD", None),
            smtp_starttls=_flag(env, "FLIGHTS_SMTP_STARTTLS"),
            alert_email_from=_text(env, "FLIGHTS_ALERT_EMAIL_FROM", "flights-pipeline@localhost"),
            alert_email_to=tuple(a.strip() for a in (_text(env, "FLIGHTS_ALERT_EMAIL_TO", "") or "").split(",") if a.strip()),
            alert_retries=_number(env, "FLIGHTS_ALERT_RETRIES", 3, int, low=0),
            alert_retry_delay=_number(env, "FLIGHTS_ALERT_RETRY_DELAY", 1.0, low=0),
        )

    @property
    def reports_dir(self) -> Path:
        """This host's cache of drift references (rebuilt from the warehouse and the registry)."""
        return self.data_dir / "reports"

    @property
    def evidently_workspace_dir(self) -> Path:
        """The local Evidently workspace when no service is set (FLIGHTS_EVIDENTLY_URL)."""
        return self.data_dir / "evidently"

    @property
    def model_cards_dir(self) -> Path:
        return self.data_dir / "model_cards"


def settings(env: Mapping[str, str] | None = None) -> Settings:
    """The settings as the environment says now."""
    return Settings.from_env(env)


def environment_variables() -> list[str]:
    """Every environment variable `Settings.from_env` reads (from the field comments' source)."""
    import re

    source = Path(__file__).read_text()
    return sorted(set(re.findall(r'env, "([A-Z_]+)"', source)))



def configure_process(serving: bool = False) -> None:
    """Telemetry off and the known warnings of the libraries filtered, for this process and the
    processes it starts. Called where a process of the pipeline begins: the Definitions, the
    operator CLIs, the benchmarks and the tests. `serving`: the scoring server, whose requests
    are single rows or small batches, where OpenMP threads in the boosted trees cost more than
    they save (11 ms -> 2 ms per row measured); its concurrency is MLflow's thread pool."""
    for name, value in {**TELEMETRY_OFF, **STORE_CLIENT_RETRIES, **({"OMP_NUM_THREADS": "1"} if serving else {})}.items():
        os.environ.setdefault(name, value)
    for category in (DeprecationWarning, FutureWarning, PendingDeprecationWarning):
        warnings.filterwarnings("ignore", category=category)


def subprocess_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a server or tool this pipeline starts (telemetry off)."""
    return {**os.environ, **TELEMETRY_OFF, **(extra or {})}
