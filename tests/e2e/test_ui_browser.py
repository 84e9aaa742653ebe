"""The Dagster UI as an auditor sees it, in a real headless Chromium: a real instance with a
materialized pipeline, `dagster-webserver` on loopback, the asset lineage graph and the
`champion_model` page with its provenance metadata. Screenshots go to FLIGHTS_SCREENSHOT_DIR
(default: the test's temporary folder)."""

import os
import sys
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance

from tests.support import REPO, assert_no_welcome_dialog, free_port, start_server, stop_server, wait_for_text

pytestmark = pytest.mark.e2e
DAYS = ("2013-06-01", "2013-06-10")


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
        "great_expectations": GreatExpectations(), "model_registry": registry,
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
        wait_for_text(browser, ["champion_model", "model_evaluation", "candidate_model", "training_set", "flight_features"])
        assert_no_welcome_dialog(browser)
        time.sleep(2)  # the graph's layout settles
        browser.save_screenshot(str(shots / "lineage_champion_model.png"))

        # the champion_model page: the provenance in its metadata
        browser.get(f"{url}/assets/champion_model")
        body = wait_for_text(browser, ["champion_model", "deployment", "model_card", "reasons", "mlflow_run", "promoted",
                                        "trigger", "training_window", "data_versions", "provenance"])
        assert "flight_delay_classifier v1" in body
        assert_no_welcome_dialog(browser)
        browser.save_screenshot(str(shots / "champion_model.png"))

        # a data asset's page: the per-day validation figures and the Data Docs link
        browser.get(f"{url}/assets/validated_flights")
        wait_for_text(browser, ["validated_flights", "rows_quarantined", "data_docs"])
        assert_no_welcome_dialog(browser)
        browser.save_screenshot(str(shots / "validated_flights.png"))
    finally:
        stop_server(server, log)
    for name in ("lineage_champion_model.png", "champion_model.png", "validated_flights.png"):
        assert (shots / name).stat().st_size > 20_000, name
