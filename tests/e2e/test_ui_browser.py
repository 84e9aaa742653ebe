"""The Dagster UI as an auditor sees it, in a real headless Chromium: a real instance with a
materialized pipeline, `dagster-webserver` on loopback, the asset lineage graph and the
`champion_model` page with its provenance metadata. Screenshots go to FLIGHTS_SCREENSHOT_DIR
(default: the test's temporary folder)."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance

from tests.support import REPO, free_port, start_server, stop_server

pytestmark = pytest.mark.e2e
DAYS = ("2013-06-01", "2013-06-10")


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


def _wait_for_text(driver, texts, timeout=120):
    deadline = time.time() + timeout
    body = ""
    while time.time() < deadline:
        body = driver.find_element("tag name", "body").text
        if all(t in body for t in texts):
            return body
        time.sleep(0.5)
    raise AssertionError(f"not on the page after {timeout} s: {[t for t in texts if t not in body]}\n{body[:3000]}")


def _dismiss_welcome(driver):
    """The UI greets a new instance with a community dialog: skip it so the page is visible."""
    for button in driver.find_elements("xpath", "//button[normalize-space()='Skip']"):
        if button.is_displayed():
            button.click()
            time.sleep(0.5)


def test_lineage_and_champion_provenance_in_the_ui(workdir, browser, tmp_path):
    from pipelines.definitions import build_definitions
    from resources.data_quality import GreatExpectations
    from resources.registry import ModelRegistry
    from resources.source import FlightSource
    from resources.warehouse import Warehouse

    data = workdir["data"]
    env = {**os.environ, "DAGSTER_HOME": str(workdir["home"]), "FLIGHTS_DATA_DIR": str(data),
           "WAREHOUSE_URL": workdir["warehouse_url"], "MLFLOW_TRACKING_URI": workdir["mlflow_uri"],
           "MLFLOW_ARTIFACT_ROOT": str(data / "mlartifacts"), "FLIGHTS_SENSOR_INTERVAL_SECONDS": "3600"}
    registry = ModelRegistry(tracking_uri=workdir["mlflow_uri"], artifact_root=str(data / "mlartifacts"))
    defs = build_definitions({
        "source": FlightSource(mode="replay"), "warehouse": Warehouse(url=workdir["warehouse_url"]),
        "great_expectations": GreatExpectations(project_dir=str(workdir["gx"])), "model_registry": registry,
    })
    instance = DagsterInstance.from_config(str(workdir["home"]))
    defs.resolve_job_def("ingest_job").execute_in_process(
        instance=instance, tags={"dagster/asset_partition_range_start": DAYS[0], "dagster/asset_partition_range_end": DAYS[1]})
    defs.resolve_job_def("retrain_job").execute_in_process(instance=instance, run_config={
        "ops": {"training_set": {"config": {"end_day": DAYS[1], "window_days": 10, "min_rows": 500}}}})

    url = f"http://127.0.0.1:{free_port()}"
    server, log = start_server(
        [str(Path(sys.executable).parent / "dagster-webserver"), "-w", str(REPO / "workspace.yaml"),
         "-h", "127.0.0.1", "-p", url.rsplit(":", 1)[1]], env, tmp_path / "webserver.log", url + "/server_info")
    shots = Path(os.environ.get("FLIGHTS_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    try:
        # the lineage of the deployed model: upstream to the data assets
        browser.get(f"{url}/assets/champion_model?view=lineage&lineageScope=upstream&lineageDepth=8")
        _wait_for_text(browser, ["champion_model", "model_evaluation", "candidate_model", "training_set", "flight_features"])
        _dismiss_welcome(browser)
        time.sleep(2)  # the graph's layout settles
        browser.save_screenshot(str(shots / "lineage_champion_model.png"))

        # the champion_model page: the provenance in its metadata
        browser.get(f"{url}/assets/champion_model")
        body = _wait_for_text(browser, ["champion_model", "deployment", "model_card", "reasons", "mlflow_run", "promoted",
                                        "trigger", "training_window", "data_versions", "provenance"])
        assert "flight_delay_classifier v1" in body
        _dismiss_welcome(browser)
        browser.save_screenshot(str(shots / "champion_model.png"))

        # a data asset's page: the per-day validation figures and the Data Docs link
        browser.get(f"{url}/assets/validated_flights")
        _wait_for_text(browser, ["validated_flights", "rows_quarantined", "data_docs"])
        _dismiss_welcome(browser)
        browser.save_screenshot(str(shots / "validated_flights.png"))
    finally:
        stop_server(server, log)
    for name in ("lineage_champion_model.png", "champion_model.png", "validated_flights.png"):
        assert (shots / name).stat().st_size > 20_000, name
