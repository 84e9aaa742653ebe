"""Helpers the tests share (import them from here, not from conftest): small real slices of the
NYC flights 2013 data, fresh stores per test, servers on loopback, sensor ticks."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent

# The PostgreSQL profile of the end-to-end tests: with FLIGHTS_TEST_POSTGRES_URL (a server URL,
# `make test-postgres` starts one on loopback) every store of a test -- the Dagster instance, the
# warehouse, the MLflow tracking store -- is a fresh database of that server; otherwise SQLite
# files in the test's temporary folder.
POSTGRES_SERVER = (os.environ.get("FLIGHTS_TEST_POSTGRES_URL") or "").rstrip("/")


def store_url(folder: Path, name: str) -> str:
    """A fresh, empty store for one test: a new PostgreSQL database, or a SQLite file."""
    if not POSTGRES_SERVER:
        folder.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{folder / (name + '.db')}"
    from sqlalchemy import create_engine

    database = f"t_{name}_{uuid.uuid4().hex[:12]}"  # our own identifier, never data
    admin = create_engine(f"{POSTGRES_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{database}"')
    admin.dispose()
    return f"{POSTGRES_SERVER}/{database}"


def make_dagster_home(home: Path) -> Path:
    """A DAGSTER_HOME with the repository's dagster.yaml; its storage on the test profile."""
    home.mkdir(parents=True, exist_ok=True)
    config = (REPO / "dagster_home" / "dagster.yaml").read_text()
    if POSTGRES_SERVER:
        config += f"\nstorage:\n  postgres:\n    postgres_url: \"{store_url(home, 'dagster')}\"\n"
    (home / "dagster.yaml").write_text(config)  # a temporary folder, never the repository
    return home


def replay_day(dataset: str, day: str) -> pd.DataFrame:
    """One real day of the embedded data, as the text that a landing file would hold."""
    from resources.source_files import _replay_table

    return _replay_table(dataset).day(day).copy()


def write_landing(folder: Path, dataset: str, day: str, frame: pd.DataFrame, fmt: str = "csv") -> Path:
    path = folder / f"{dataset}_{day}.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False, na_rep="NA")
    else:
        frame.to_parquet(path, index=False)
    return path



def land_and_ingest(defs, instance, landing: Path, days: list[str], ingest_through: str | None = None) -> None:
    """Each day's real flights and weather as landing files, then one ingest_job run over
    days[0] .. `ingest_through` (default: the last day)."""
    for day in days:
        write_landing(landing, "flights", day, replay_day("flights", day))
        write_landing(landing, "weather", day, replay_day("weather", day))
    defs.resolve_job_def("ingest_job").execute_in_process(instance=instance, tags={
        "dagster/asset_partition_range_start": days[0], "dagster/asset_partition_range_end": ingest_through or days[-1]})

def typed_day(dataset: str, day: str) -> pd.DataFrame:
    """One real day, typed as validated_* holds it (without going through the warehouse)."""
    from assets.validation.logic import prepare_for_validation
    from resources.schemas import FLIGHTS, WEATHER

    contract = FLIGHTS if dataset == "flights" else WEATHER
    raw = replay_day(dataset, day)
    raw.insert(0, "row_number", range(1, len(raw) + 1))
    raw.insert(0, "source_file", "f")
    raw.insert(0, "partition_date", day)
    frame = prepare_for_validation(raw, contract)
    return frame[["partition_date", "source_file", "row_number", *contract.column_names]]


def feature_days(days: list[str]) -> pd.DataFrame:
    """flight_features rows of real days, as the features asset computes them."""
    from assets.features.logic import build_features

    return pd.concat([build_features(typed_day("flights", d), typed_day("weather", d)) for d in days], ignore_index=True)


def training_set_of(features: pd.DataFrame, days: list[str], min_rows: int = 100):
    """The time-split training set of real feature rows over `days`."""
    from assets.training.logic import build_training_set, split_days
    from resources.records import TrainingWindow

    return build_training_set(features, TrainingWindow(split_days(days)), min_rows)


def json_records(frame: pd.DataFrame) -> list[dict]:
    """Rows as a client sends them: JSON objects, missing values as null, floats exact
    (`DataFrame.to_json` rounds to 10 digits, which can move a row across a tree's split)."""
    return json.loads(json.dumps(frame.astype(object).where(frame.notna(), None).to_dict(orient="records")))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(cmd: list[str], env: dict, log_path: Path, ready_url: str, timeout: float = 120):
    """Start a server in its own process group, logging to a file (an unread pipe fills up and
    blocks it), and wait until `ready_url` answers."""
    log = open(log_path, "w+b")
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=log, stderr=log, start_new_session=True)
    deadline = time.time() + timeout
    while True:
        try:
            urllib.request.urlopen(ready_url, timeout=2)
            return proc, log
        except Exception:
            assert proc.poll() is None and time.time() < deadline, log_path.read_text(errors="replace")[-3000:]
            time.sleep(0.5)


def stop_server(proc, log) -> None:
    """Stop the server and everything it started (its process group)."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    log.close()


def command_lines(roots: list[int]) -> dict[int, str]:
    """The command line (what every local user can read: ps, /proc/<pid>/cmdline) of each running
    process among `roots` and all their descendants: pid -> the arguments joined by spaces."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    tree, grew = set(roots) & set(parents), True
    while grew:
        children = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= children
        grew = bool(children)
    lines = {}
    for pid in tree:
        with contextlib.suppress(OSError):
            lines[pid] = (Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")).strip()
    return lines


def tick(sensor, instance, cursor):
    """One evaluation of a sensor as the daemon runs it: (run requests, new cursor, skip message)."""
    from dagster import SkipReason, build_sensor_context

    result = sensor(build_sensor_context(instance=instance, cursor=cursor))
    if isinstance(result, SkipReason):
        return [], cursor, result.skip_message
    requests = list(result.run_requests or [])
    skip = result.skip_reason.skip_message if result.skip_reason else None
    return requests, result.cursor if result.cursor is not None else cursor, skip


def warehouse_snapshot(warehouse, versions: bool = True) -> dict[str, list]:
    """Every row of every warehouse table (but the ingestion timestamp of a day's manifest:
    in a run that fails on flights, the weather branch may re-ingest the same weather).
    `versions=False`: the current rows only, without their version ids (the content of the
    current versions, which two runs of the same data agree on)."""
    from sqlalchemy import select

    from resources.schemas import day_versions, history_tables, metadata

    skip = set() if versions else {day_versions.name, *(t.name for t in history_tables.values())}
    out = {}
    with warehouse.engine.connect() as conn:
        for name, table in metadata.tables.items():
            if name in skip:
                continue
            cols = [c for c in table.columns if c.name != "ingested_at" and (versions or c.name != "version_id")]
            out[name] = sorted(map(tuple, conn.execute(select(*cols)).fetchall()), key=repr)
    return out


def write_versions(warehouse, asset: str, frames: dict, days: list[str], content: str = "test"):
    """A new version of each of `days` of `asset` with these rows (one frame per table the asset
    writes; a missing table: no rows), as the assets write them. Returns `WrittenVersions`."""
    from resources.day_versions import DayVersion
    from resources.schemas import VERSIONED_ASSETS

    tables = {t: frames.get(t, pd.DataFrame({"partition_date": []})) for t, _ in VERSIONED_ASSETS[asset]}
    with warehouse.replace_partitions() as tx:
        return tx.write_version(asset, {d: DayVersion(content) for d in days}, tables)


def dagster_cli_env(workdir: dict, **extra) -> dict:
    """The environment of a `dagster` CLI run against one test's stores. A tracking URI left in
    this process's environment by an earlier test (`mlflow.set_tracking_uri` exports it) is
    dropped: the CLI's MLflow store is the test's own (under FLIGHTS_DATA_DIR) unless given."""
    inherited = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_ARTIFACT_ROOT")}
    return {**inherited, "DAGSTER_HOME": str(workdir["home"]), "FLIGHTS_DATA_DIR": str(workdir["data"]),
            "WAREHOUSE_URL": workdir["warehouse_url"], "FLIGHTS_LANDING_DIR": str(workdir["landing"]), **extra}


def check_evaluations(instance, asset: str, check: str) -> list[tuple[str | None, bool, str]]:
    """(partition, passed, run id) of every evaluation of a check, oldest first, from the runs'
    event records."""
    from dagster import AssetKey, DagsterEventType

    out = []
    for run in reversed(instance.get_runs()):
        for record in instance.get_records_for_run(run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION).records:
            evaluation = record.event_log_entry.dagster_event.event_specific_data
            if evaluation.asset_key == AssetKey(asset) and evaluation.check_name == check:
                out.append((evaluation.partition, evaluation.passed, run.run_id))
    return out


def every_setting(folder: Path) -> dict[str, str]:
    """Every documented setting (docs/settings.md) with a value an operator CLI may run with; the
    stores' own variables (WAREHOUSE_URL, MLFLOW_*, FLIGHTS_DATA_DIR) are left to the caller."""
    import re

    values = {
        "FLIGHTS_SOURCE": "landing", "FLIGHTS_LANDING_DIR": str(folder / "landing"),
        # never reached: the stores' own variables win over the profile
        "FLIGHTS_POSTGRES_URL": "postgresql+psycopg2://nobody:secret@127.0.0.1:9",
        "FLIGHTS_MAX_QUARANTINE_SHARE": "0.2", "FLIGHTS_MIN_WEATHER_COVERAGE": "0.8", "FLIGHTS_MIN_ARRIVALS_SHARE": "0.8",
        "FLIGHTS_DRIFT_SHARE": "0.4",
        "FLIGHTS_COLUMN_DRIFT_THRESHOLD": "0", "FLIGHTS_COLUMN_DRIFT_QUANTILE": "0.9",
        "FLIGHTS_DRIFT_REFERENCE_ROWS": "2000", "FLIGHTS_ROC_AUC_DROP": "0.04", "FLIGHTS_PERFORMANCE_WINDOW_DAYS": "2",
        "FLIGHTS_RETRAIN_COOLDOWN_DAYS": "5", "FLIGHTS_RETRAIN_EVERY_DAYS": "10", "FLIGHTS_SENSOR_INTERVAL_SECONDS": "15",
        "FLIGHTS_REPLAY_START": "2013-06-01", "FLIGHTS_REPLAY_END": "2013-11-30", "FLIGHTS_REPLAY_SECONDS_PER_DAY": "30",
        "FLIGHTS_REPLAY_PERIODIC_RETRAIN": "true", "FLIGHTS_EXECUTOR": "in_process",
        "FLIGHTS_CELERY_BROKER": "redis://127.0.0.1:9/0", "FLIGHTS_CELERY_BACKEND": "redis://127.0.0.1:9/1",
        "FLIGHTS_STORE_RETRIES": "1", "FLIGHTS_STORE_RETRY_DELAY": "0.1",
        "MLFLOW_TRACKING_USERNAME": "pipeline",  # unused by a SQLite or PostgreSQL tracking store
        "FLIGHTS_MLFLOW_UI_URL": "http://mlflow.internal:5000", "FLIGHTS_EVIDENTLY_UI_URL": "http://monitoring.internal:8000",
        "FLIGHTS_EVIDENTLY_SECRET": "write-secret",
        "FLIGHTS_TUNING_TRIALS": "3", "FLIGHTS_TUNING_SECONDS": "10",
        "FLIGHTS_PROMOTION_MODE": "approve", "FLIGHTS_CHALLENGER_EXPIRY_DAYS": "5", "FLIGHTS_SHADOW_DAYS": "2",
        "FLIGHTS_CANARY_SHARE": "0.2", "FLIGHTS_CANARY_DAYS": "2", "FLIGHTS_ROLLBACK_WATCH_DAYS": "2",
        "FLIGHTS_DATA_RETENTION_DAYS": "30",
        "FLIGHTS_SERVE_POLL_SECONDS": "1", "FLIGHTS_SERVE_RECORD": "false", "FLIGHTS_SERVE_RECORD_SECONDS": "0.5",
        "FLIGHTS_DAGSTER_UI_URL": "http://dagster.internal:3000",
        # alerts to nowhere: an operator CLI sends none
        "FLIGHTS_ALERT_WEBHOOK_URL": "http://127.0.0.1:9/hook", "FLIGHTS_SMTP_HOST": "127.0.0.1", "FLIGHTS_SMTP_PORT": "9",
        "FLIGHTS_SMTP_USERNAME": "alerts", "FLIGHTS_SMTP_PASSWORD": "mail-secret", "FLIGHTS_SMTP_STARTTLS": "false",
        "FLIGHTS_ALERT_EMAIL_FROM": "pipeline@example.org", "FLIGHTS_ALERT_EMAIL_TO": "ops@example.org",
        "FLIGHTS_ALERT_RETRIES": "0", "FLIGHTS_ALERT_RETRY_DELAY": "0.1",
        "FLIGHTS_SMTP_SSL": "false", "FLIGHTS_SMTP_CA_FILE": str(folder / "smtp-ca.pem"), "FLIGHTS_ALERT_SECONDS": "2",
        "FLIGHTS_ALERT_TICK_SECONDS": "10", "FLIGHTS_ALERT_TICK_MAX": "5", "FLIGHTS_SERVICE_TIMEOUT": "5",
            "FLIGHTS_SERVE_MAX_BODY_MB": "8", "FLIGHTS_SERVE_MAX_ROWS": "5000", "FLIGHTS_SERVE_RECORD_MAX_MB": "32",
            "FLIGHTS_LANDING_MAX_BYTES": "50000000",
    }
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", (REPO / "docs" / "settings.md").read_text(), re.M))
    stores = {"WAREHOUSE_URL", "MLFLOW_TRACKING_URI", "MLFLOW_ARTIFACT_ROOT", "FLIGHTS_DATA_DIR", "FLIGHTS_EVIDENTLY_URL"}
    assert documented - stores == set(values), documented ^ (set(values) | stores)
    return values


def wait_for_text(driver, texts, timeout=120):
    deadline = time.time() + timeout
    body = ""
    while time.time() < deadline:
        body = driver.find_element("tag name", "body").text
        if all(t in body for t in texts):
            return body
        time.sleep(0.5)
    raise AssertionError(f"not on the page after {timeout} s: {[t for t in texts if t not in body]}\n{body[:3000]}")


def assert_no_welcome_dialog(driver):
    """Nothing stands in front of the page: Dagster's community sign-up dialog, which the UI opens
    one second after a page loads unless the instance sets `nux: enabled: false`, is not shown."""
    time.sleep(1.5)
    shown = [d.text[:80] for d in driver.find_elements("css selector", ".bp5-dialog, [role='dialog']") if d.is_displayed()]
    assert not shown and "Join the Dagster community" not in driver.find_element("tag name", "body").text, shown


class WebhookReceiver:
    """A local HTTP server that takes JSON POSTs (an alert webhook): `received` holds the bodies;
    the first `refuse` requests get a 500."""

    def __init__(self, refuse: int = 0):
        import http.server
        import threading

        self.received: list[dict] = []
        self.refused = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if owner.refused < refuse:
                    owner.refused += 1
                    self.send_response(500)
                else:
                    owner.received.append(json.loads(body))
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T000/B000/secret-token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def texts(self) -> list[str]:
        return [m["text"] for m in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SmtpServer:
    """A local SMTP server (aiosmtpd): `messages` holds each email received. `delay`: seconds it
    takes to accept each message (a slow host); `tls`: the server's `ssl.SSLContext`, offered by
    STARTTLS, or from the first byte with `implicit` (SMTPS); `users`: the logins it accepts, each
    login tried kept in `logins` as (user, password, over TLS) -- a permissive server, that would
    take a password in clear."""

    def __init__(self, delay: float = 0.0, tls=None, implicit: bool = False, users: dict[str, str] | None = None):
        import asyncio
        from email import message_from_bytes

        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        owner = self
        self.messages: list = []
        self.logins: list[tuple[str, str, bool]] = []

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
                if delay:
                    await asyncio.sleep(delay)
                owner.messages.append(message_from_bytes(envelope.original_content))
                return "250 OK"

        def authenticator(server, session, envelope, mechanism, auth_data):
            user, password = auth_data.login.decode(), auth_data.password.decode()
            owner.logins.append((user, password, server.transport.get_extra_info("ssl_object") is not None))
            return AuthResult(success=(users or {}).get(user) == password)

        options = {"authenticator": authenticator, "auth_require_tls": False} if users is not None else {}
        if tls is not None:
            options["ssl_context" if implicit else "tls_context"] = tls
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=free_port(), **options)
        self.controller.start()
        self.port = self.controller.port

    def close(self) -> None:
        self.controller.stop()


class HangingServer:
    """A loopback TCP server that accepts every connection and never answers (a service that
    hangs: HTTP, SMTP). `accepted`: connections taken; `hung_up`: those the client closed first.
    After `hold` seconds it closes a connection itself, so that a client without a deadline fails
    late instead of blocking the tests for ever (`held_to_the_end` counts those)."""

    def __init__(self, hold: float = 20.0):
        import threading

        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.accepted = self.hung_up = self.held_to_the_end = 0
        owner = self

        def hold_open(conn):
            conn.settimeout(hold)
            with conn:
                try:
                    while conn.recv(65536):
                        pass
                    owner.hung_up += 1
                except TimeoutError:
                    owner.held_to_the_end += 1
                except OSError:
                    owner.hung_up += 1

        def accept():
            while True:
                try:
                    conn, _ = self.listener.accept()
                except OSError:
                    return
                owner.accepted += 1
                threading.Thread(target=hold_open, args=(conn,), daemon=True).start()

        threading.Thread(target=accept, daemon=True).start()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        self.listener.close()


def defined_columns(asset: str) -> list[str]:
    """The standard `dagster/column_schema` of an asset's definition (the warehouse table it writes)."""
    from dagster import AssetKey

    from pipelines.definitions import defs

    key = AssetKey(asset)
    return [c.name for c in defs.resolve_assets_def(key).specs_by_key[key].metadata["dagster/column_schema"].columns]


def run(defs, instance, job: str, request=None, raise_on_error=True, **kwargs):
    """A job in process, or the run a sensor requested (`request`: its tags, partition and config)."""
    kw = dict(instance=instance, raise_on_error=raise_on_error, **kwargs)
    if request is not None:
        kw.update(tags=request.tags, partition_key=request.partition_key)
        kw.setdefault("run_config", request.run_config)
    return defs.resolve_job_def(job).execute_in_process(**kw)


def retrain(defs, instance, mode: str, end_day: str, **gate):
    """retrain_job on the 10 days up to `end_day`, the gate configured by `gate`, promotion mode `mode`."""
    config = {"ops": {"training_set": {"config": {"end_day": end_day, "window_days": 10, "min_rows": 500}},
                      "model_evaluation": {"config": gate}, "champion_model": {"config": {"promotion_mode": mode}}}}
    return run(defs, instance, "retrain_job", run_config=config)


def latest(instance, asset: str, partition: str | None = None) -> dict:
    """The metadata of the newest materialization of `asset` (of a day)."""
    from dagster import AssetKey, AssetRecordsFilter

    records = instance.fetch_materializations(AssetRecordsFilter(
        asset_key=AssetKey(asset), asset_partitions=[partition] if partition else None), limit=1).records
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}
