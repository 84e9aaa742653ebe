"""The settings of the pipeline: one typed object, built from the environment when asked for.

`settings()` reads the environment each time it is called (nothing is read at import), so a
process, a test or an operator CLI sees the variables it runs with. This is the only module of
`assets/`, `pipelines/` and `resources/` that reads the environment. `Settings` is the schema: a
field's variable is `FLIGHTS_` + its name in capitals unless its alias says otherwise, its type
and bounds are what the variable may hold, and a default may follow from the fields above it.
A plain pydantic model rather than pydantic-settings: `settings(env)` parses any mapping (the
tests' own), while `BaseSettings` reads only `os.environ`, and its imports cost ~0.1 s more.
Every variable is listed in docs/settings.md; `tests/unit/test_settings.py` checks the two agree.

Per-run overrides of the thresholds stay in the Launchpad (asset config): a config value of
`None` means "the setting".
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import annotated_types
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import ErrorDetails

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

PromotionMode = Literal["auto", "approve", "shadow", "canary"]
PROMOTION_MODES = get_args(PromotionMode)


class SettingError(ValueError):
    """An environment variable holds a value the pipeline cannot use."""


def _served(url: str | None) -> bool:
    return bool(url) and url.startswith(("http://", "https://"))


def _http(url: str, expected: str = "an http(s) URL") -> str:
    if not _served(url):
        raise ValueError(f"expected {expected}")
    return url


def _day(value: str) -> str:
    try:
        date.fromisoformat(value)
    except ValueError:
        raise ValueError("is not a day (YYYY-MM-DD)") from None
    return value


def _flag(value: Any) -> Any:
    if isinstance(value, str) and value.lower() not in ("1", "true", "yes", "0", "false", "no"):
        raise ValueError("expected true or false")
    return value


def _addresses(value: Any) -> Any:
    return tuple(a.strip() for a in value.split(",") if a.strip()) if isinstance(value, str) else value


def _on_server(s: dict, database: str) -> str | None:
    return f"{s['postgres_url']}/{database}" if s["postgres_url"] else None


Folder = Annotated[Path, AfterValidator(lambda path: path.expanduser().resolve())]
Url = Annotated[str, AfterValidator(lambda url: url.rstrip("/"))]
Day = Annotated[str, AfterValidator(_day)]
Flag = Annotated[bool, BeforeValidator(_flag)]
Addresses = Annotated[tuple[str, ...], BeforeValidator(_addresses)]  # comma-separated


class Settings(BaseModel):
    """Every setting of the pipeline (the variables: docs/settings.md)."""

    # every number is finite (`nan`, `inf` refused) and within its field's bounds
    model_config = ConfigDict(alias_generator=lambda name: f"FLIGHTS_{name.upper()}", frozen=True, defer_build=True,
                              allow_inf_nan=False)

    data_dir: Folder = REPO_ROOT / "data"  # generated stores
    source: Literal["replay", "landing"] = "replay"
    landing_dir: Folder = Field(default_factory=lambda s: s["data_dir"] / "landing")
    # a landing file larger than this is refused unread (a day of flights is ~0.1 MB)
    landing_max_bytes: int = Field(100_000_000, ge=1_000, le=2_000_000_000)
    # a server URL; every store on it
    postgres_url: Annotated[str | None, AfterValidator(lambda url: url.rstrip("/") or None)] = None
    warehouse_url: str = Field(alias="WAREHOUSE_URL",
                               default_factory=lambda s: _on_server(s, "warehouse") or f"sqlite:///{s['data_dir'] / 'warehouse.db'}")
    mlflow_tracking_uri: str = Field(alias="MLFLOW_TRACKING_URI",
                                     default_factory=lambda s: _on_server(s, "mlflow") or f"sqlite:///{s['data_dir'] / 'mlflow.db'}")
    # a tracking server keeps (proxies) the artifacts itself: clients name no folder
    mlflow_artifact_root: str | None = Field(
        alias="MLFLOW_ARTIFACT_ROOT",
        default_factory=lambda s: None if _served(s["mlflow_tracking_uri"]) else str(s["data_dir"] / "mlartifacts"))
    mlflow_tracking_username: str | None = Field(None, alias="MLFLOW_TRACKING_USERNAME")  # the password: MLflow reads it itself
    # where links to runs, versions and model cards point: the tracking server's UI, or `make mlflow-ui`
    mlflow_ui_url: Url = Field(default_factory=lambda s: s["mlflow_tracking_uri"].rstrip("/") if _served(s["mlflow_tracking_uri"]) else "http://127.0.0.1:5000")
    # monitoring service: an `evidently ui` service (None: a local workspace folder), its write secret
    evidently_url: Annotated[Url, AfterValidator(lambda url: _http(url, "the http(s) URL of an `evidently ui` service"))] | None = None
    evidently_secret: str | None = Field(None, repr=False)
    # where links to snapshots point: the service's own UI, or `make evidently-ui`
    evidently_ui_url: Url = Field(default_factory=lambda s: s["evidently_url"] or "http://127.0.0.1:8000")
    # data quality
    max_quarantine_share: float = Field(0.10, ge=0, le=1)
    min_weather_coverage: float = Field(0.90, ge=0, le=1)
    # the share of a day's departed flights whose arrival is known: in 2013 never below 0.956
    min_arrivals_share: float = Field(0.90, ge=0, le=1)
    # monitoring and retraining: the three thresholds the retrain sensors apply were chosen on
    # 2013-03 … 06 and judged on 07 … 12 (bench/retarget_sensors.py, docs/benchmarks.md): a drift
    # share of 0.45 (the column thresholds are calibrated: March-May showed shares from 0 to 0.47,
    # median 0.05), a ROC AUC drop of 0.07 and a cooldown of 14 days
    drift_share: float = Field(0.45, gt=0, le=1)
    column_drift_threshold: float = Field(0.0, ge=0, le=10)  # 0 = calibrated
    column_drift_quantile: float = Field(0.95, gt=0, le=1)
    # above 1000 rows Evidently keeps the same drift methods as on the full window
    drift_reference_rows: Annotated[int, AfterValidator(lambda rows: max(1001, rows))] = Field(5000, ge=1, le=1_000_000)
    # above 0: a drop of 0 or less would call every day degraded
    roc_auc_drop: float = Field(0.07, gt=0, le=1)
    performance_window_days: int = Field(3, ge=1, le=365)
    # retraining and the replay clock
    retrain_cooldown_days: int = Field(14, ge=0, le=365)
    retrain_every_days: int = Field(7, ge=1, le=365)
    sensor_interval_seconds: int = Field(30, ge=1, le=86_400)
    replay_start: Day = "2013-01-01"
    replay_end: Day = "2013-12-31"
    replay_seconds_per_day: int = Field(60, ge=1, le=86_400)
    replay_periodic_retrain: Flag = False
    # execution
    executor: Literal["in_process", "multiprocess", "celery"] = "in_process"
    celery_broker: str | None = None
    celery_backend: str | None = Field(default_factory=lambda s: s["celery_broker"])
    store_retries: int = Field(3, ge=0, le=20)
    store_retry_delay: float = Field(2.0, ge=0, le=600)  # seconds
    # training: fits a retrain's search may make in all (windows + tuning; 0: no tuning), and for how long
    tuning_trials: int = Field(20, ge=0, le=1000)
    tuning_seconds: float = Field(30.0, ge=0, le=86_400)
    # deployment: replayed days a challenger may wait, labelled days a shadow challenger is judged on
    promotion_mode: PromotionMode = "auto"
    challenger_expiry_days: int = Field(7, ge=1, le=365)
    shadow_days: int = Field(3, ge=1, le=365)
    # canary: the share of the flights asked by flight the challenger answers, the labelled days that decide
    canary_share: float = Field(0.1, gt=0, le=0.5)
    canary_days: int = Field(3, ge=1, le=365)
    # after a promotion: labelled days the previous champion is scored beside the new one (0: never)
    rollback_watch_days: int = Field(3, ge=0, le=365)
    # data versions: superseded versions kept this long (unless a model uses them)
    data_retention_days: float = Field(90.0, ge=0, le=36_500)
    # serving: how often it checks the `champion` alias; served requests recorded in the warehouse, in batches
    serve_poll_seconds: float = Field(2.0, ge=0.1, le=3600)
    serve_record: Flag = True
    serve_record_seconds: float = Field(1.0, ge=0.05, le=3600)
    # the scoring server's bounds: a request's body (413 past it) and rows; the recorder's memory
    serve_max_body_mb: float = Field(16.0, ge=0.01, le=1024)
    serve_max_rows: int = Field(10_000, ge=1, le=1_000_000)
    serve_record_max_mb: float = Field(64.0, ge=1, le=8192)
    # alerts (a Slack webhook URL holds a secret; no SMTP host: no email)
    dagster_ui_url: Url = "http://127.0.0.1:3000"
    alert_webhook_url: Annotated[str, AfterValidator(_http)] | None = Field(None, repr=False)
    smtp_host: str | None = None
    smtp_port: int = Field(25, ge=1, le=65_535)
    smtp_username: str | None = None
    smtp_password: str | None = Field(None, repr=False)
    smtp_starttls: Flag = False
    smtp_ssl: Flag = False  # SMTPS: TLS from the first byte (port 465), instead of STARTTLS
    smtp_ca_file: Folder | None = None  # a CA bundle (PEM) the SMTP server's certificate is checked against
    alert_email_from: str = "flights-pipeline@localhost"
    alert_email_to: Addresses = ()
    alert_retries: int = Field(3, ge=0, le=20)
    alert_retry_delay: float = Field(1.0, ge=0, le=600)  # seconds, doubled each retry
    # deadlines: one alert's delivery (its retries included); an alert sensor's tick, and the alerts it delivers at most
    alert_seconds: float = Field(10.0, ge=0.1, le=600)
    alert_tick_seconds: float = Field(40.0, ge=1, le=3600)
    alert_tick_max: int = Field(20, ge=1, le=10_000)
    # every call to a service (Evidently service, MLflow tracking server, webhook, SMTP) waits this long for an answer
    service_timeout: float = Field(30.0, ge=0.1, le=3600)  # seconds

    @model_validator(mode="before")
    @classmethod
    def _trimmed(cls, env: Mapping[str, str]) -> dict[str, str]:
        """A variable is its value without surrounding blanks; a blank one is unset."""
        return {name: value.strip() for name, value in env.items() if value.strip()}

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        problems = [message for wrong, message in (
            (self.executor == "celery" and not self.celery_broker,
             'FLIGHTS_EXECUTOR=celery needs FLIGHTS_CELERY_BROKER (e.g. `eval "$(make -s broker-up)"`)'),
            (self.replay_end < self.replay_start, f"FLIGHTS_REPLAY_END={self.replay_end} is before FLIGHTS_REPLAY_START={self.replay_start}"),
            (self.smtp_host and not self.alert_email_to, "FLIGHTS_SMTP_HOST is set but FLIGHTS_ALERT_EMAIL_TO names no recipient"),
        ) if wrong]
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings from `env` (default: this process's environment); a SettingError names each bad variable."""
        try:
            return cls.model_validate(os.environ if env is None else env)
        except ValidationError as error:
            raise SettingError("\n".join(filter(None, map(_problem, error.errors(include_url=False))))) from None

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


def _problem(error: ErrorDetails) -> str | None:
    """One bad variable as one line, `NAME='value' is not a number` (a secret's value is not shown)."""
    kind, ctx = error["type"], error.get("ctx", {})
    if kind == "default_factory_not_called":
        return None  # a default that follows from a bad variable: that variable is the problem
    if not error["loc"]:  # a check across variables: its message names them
        return str(ctx["error"])
    name = error["loc"][0]
    field = {f.alias: f for f in Settings.model_fields.values()}[name]
    match kind:
        case "float_parsing":
            detail = "is not a number"
        case "finite_number":
            detail = f"is not a finite number{_range(field)}"
        case "int_parsing" | "int_from_float":
            detail = "is not an integer"
        case "greater_than_equal":
            detail = f"is below its minimum {_num(ctx['ge'])}{_range(field)}"
        case "greater_than":
            detail = f"is not above {_num(ctx['gt'])}{_range(field)}"
        case "less_than_equal":
            detail = f"is above its maximum {_num(ctx['le'])}{_range(field)}"
        case "literal_error":
            detail = f"expected one of {', '.join(get_args(field.annotation))}"
        case _:
            detail = str(ctx["error"]) if kind == "value_error" else error["msg"]
    shown = name if field.repr is False else f"{name}={error['input']!r}"
    return f"{shown}{' ' if detail.startswith('is ') else ': '}{detail}"


def bounds(field) -> str | None:
    """A number field's allowed values as `0 < x ≤ 1` (None: not a bounded number), from the
    field's own annotated-types constraints (the schema is the one place a bound is written)."""
    low = high = ""
    for c in field.metadata:
        if isinstance(c, annotated_types.Ge | annotated_types.Gt):
            low = f"{_num(c.ge)} ≤ " if isinstance(c, annotated_types.Ge) else f"{_num(c.gt)} < "
        elif isinstance(c, annotated_types.Le | annotated_types.Lt):
            high = f" ≤ {_num(c.le)}" if isinstance(c, annotated_types.Le) else f" < {_num(c.lt)}"
    return f"{low}x{high}" if low or high else None


def _num(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) and value != int(value) else str(int(value))


def _range(field) -> str:
    return f" (allowed: {bounds(field)})" if bounds(field) else ""


def settings(env: Mapping[str, str] | None = None) -> Settings:
    """The settings as the environment says now."""
    return Settings.from_env(env)


def environment_variables() -> list[str]:
    """Every environment variable the settings read: the schema's aliases."""
    return sorted(field.alias for field in Settings.model_fields.values())


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
