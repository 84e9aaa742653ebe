"""Fixtures: a temporary warehouse, GX project, Dagster home and landing folder per test.

Tests are in three folders, marked by folder: `unit` (plain functions, no Dagster instance),
`integration` (in-process Dagster, real GX, real SQLite), `e2e` (the dagster CLI, the daemon,
servers, the browser; `-m e2e`, also run on PostgreSQL by `make test-postgres`) and `team` (the
team profile: every store a service, steps on two workers; `make test-team`). Helpers shared
by tests are in tests/support.py."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from resources.settings import configure_process

configure_process()
# retries of an unreachable store: fast in tests (the policy is read when the assets are defined)
os.environ.setdefault("FLIGHTS_STORE_RETRY_DELAY", "0.2")
# retrains without hyperparameter tuning (each training window still tried): the tests that
# exercise tuning set their own number of trials
os.environ.setdefault("FLIGHTS_TUNING_TRIALS", "0")

from tests.support import REPO, make_dagster_home, store_url  # noqa: E402


def pytest_collection_modifyitems(config, items):
    for item in items:
        for kind in ("unit", "integration", "e2e", "team"):
            if f"{os.sep}tests{os.sep}{kind}{os.sep}" in str(item.fspath):
                item.add_marker(getattr(pytest.mark, kind))


@pytest.fixture
def workdir(tmp_path: Path) -> dict:
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
    }


@pytest.fixture
def resources(workdir):
    """Resources of the in-process tests, reading landing files from the temporary folder."""
    from resources.data_quality import GreatExpectations
    from resources.registry import ModelRegistry
    from resources.source import FlightSource
    from resources.warehouse import Warehouse

    return {
        "source": FlightSource(mode="landing", landing_dir=str(workdir["landing"])),
        "warehouse": Warehouse(url=workdir["warehouse_url"]),
        "great_expectations": GreatExpectations(),
        # where the validations keep their Data Docs pages
        "model_registry": ModelRegistry(tracking_uri=workdir["mlflow_uri"], artifact_root=str(workdir["data"] / "mlartifacts")),
    }


@pytest.fixture
def landing_day(workdir):
    """Write one real day of flights and weather into the landing folder (optionally altered)."""
    from tests.support import replay_day, write_landing

    def _write(day: str, flights=None, weather=None):
        fl = replay_day("flights", day) if flights is None else flights
        write_landing(workdir["landing"], "flights", day, fl)
        if weather is not False:
            we = replay_day("weather", day) if weather is None else weather
            write_landing(workdir["landing"], "weather", day, we)
        return workdir["landing"] / f"flights_{day}.csv"

    return _write


@pytest.fixture(scope="module")
def browser():
    # part of the set-up on a fresh machine: Chromium and its driver from the OS packages
    subprocess.run(["bash", str(REPO / "deploy" / "browser" / "install_chromium.sh")], check=True)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1600,1000"):
        options.add_argument(arg)
    options.binary_location = shutil.which("chromium")
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


@pytest.fixture
def alerting(monkeypatch):
    """Alerts to a local webhook (its first delivery refused: retried) and a local SMTP server."""
    from tests.support import SmtpServer, WebhookReceiver

    hook, mail = WebhookReceiver(refuse=1), SmtpServer()
    monkeypatch.setenv("FLIGHTS_ALERT_WEBHOOK_URL", hook.url)
    monkeypatch.setenv("FLIGHTS_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("FLIGHTS_SMTP_PORT", str(mail.port))
    monkeypatch.setenv("FLIGHTS_ALERT_EMAIL_TO", "ml-team@example.org")
    monkeypatch.setenv("FLIGHTS_ALERT_RETRY_DELAY", "0.05")
    monkeypatch.setenv("FLIGHTS_DAGSTER_UI_URL", "http://dagster.test:3000")
    yield hook, mail
    hook.close()
    mail.close()
