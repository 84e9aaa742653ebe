"""Shared fixtures: a temporary warehouse, GX project, Dagster home and landing folder per test,
and small real slices of the NYC flights 2013 data written as landing files."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parent.parent

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
# retries of an unreachable store: fast in tests (the policy is read when the assets are imported)
os.environ.setdefault("FLIGHTS_STORE_RETRY_DELAY", "0.2")


# The PostgreSQL profile of the end-to-end tests: with FLIGHTS_TEST_POSTGRES_URL (a server URL,
# `make test-postgres` starts one on loopback) every store of a test -- the Dagster instance, the
# warehouse, the MLflow tracking store -- is a fresh database of that server; otherwise SQLite
# files in the test's temporary folder.
POSTGRES_SERVER = os.environ.get("FLIGHTS_TEST_POSTGRES_URL", "").rstrip("/")


def store_url(folder: Path, name: str) -> str:
    """A fresh, empty store for one test: a new PostgreSQL database, or a SQLite file."""
    if not POSTGRES_SERVER:
        folder.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{folder / (name + '.db')}"
    import uuid

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


@pytest.fixture
def workdir(tmp_path: Path) -> dict[str, Path]:
    """Folders and URLs of one isolated pipeline: nothing is shared with other tests."""
    home = make_dagster_home(tmp_path / "dagster_home")
    data = tmp_path / "data"
    landing = data / "landing"
    landing.mkdir(parents=True)
    return {
        "home": home,
        "data": data,
        "landing": landing,
        "warehouse_url": store_url(data, "warehouse"),
        "mlflow_uri": store_url(data, "mlflow"),
        "gx": data / "gx",
    }


@pytest.fixture
def resources(workdir):
    """Resources of the in-process tests, reading landing files from the temporary folder."""
    from resources.data_quality import GreatExpectations
    from resources.source import FlightSource
    from resources.warehouse import Warehouse

    return {
        "source": FlightSource(mode="landing", landing_dir=str(workdir["landing"])),
        "warehouse": Warehouse(url=workdir["warehouse_url"]),
        "great_expectations": GreatExpectations(project_dir=str(workdir["gx"])),
    }


def replay_day(dataset: str, day: str) -> pd.DataFrame:
    """One real day of the embedded data, as the text that a landing file would hold."""
    from resources.source import _replay_days

    _, days = _replay_days(dataset)
    return days[day].copy()


def write_landing(folder: Path, dataset: str, day: str, frame: pd.DataFrame, fmt: str = "csv") -> Path:
    path = folder / f"{dataset}_{day}.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False, na_rep="NA")
    else:
        frame.to_parquet(path, index=False)
    return path


@pytest.fixture
def landing_day(workdir):
    """Write one real day of flights and weather into the landing folder (optionally altered)."""

    def _write(day: str, flights: pd.DataFrame | None = None, weather: pd.DataFrame | None | bool = None):
        fl = replay_day("flights", day) if flights is None else flights
        write_landing(workdir["landing"], "flights", day, fl)
        if weather is not False:
            we = replay_day("weather", day) if weather is None else weather
            write_landing(workdir["landing"], "weather", day, we)
        return workdir["landing"] / f"flights_{day}.csv"

    return _write


def typed_day(dataset: str, day: str) -> pd.DataFrame:
    """One real day, typed as validated_* holds it (without going through the warehouse)."""
    from assets.validation import prepare_for_validation
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
    from assets.features import build_features

    return pd.concat(
        [build_features(typed_day("flights", d), typed_day("weather", d)) for d in days], ignore_index=True
    )


def json_records(frame: pd.DataFrame) -> list[dict]:
    """Rows as a client sends them: JSON objects, missing values as null, floats exact
    (`DataFrame.to_json` rounds to 10 digits, which can move a row across a tree's split)."""
    import json

    return json.loads(json.dumps(frame.astype(object).where(frame.notna(), None).to_dict(orient="records")))


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(cmd: list[str], env: dict, log_path: Path, ready_url: str, timeout: float = 120):
    """Start a server in its own process group, logging to a file (an unread pipe fills up and
    blocks it), and wait until `ready_url` answers."""
    import subprocess
    import time
    import urllib.request

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
    import signal
    import subprocess

    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    log.close()
