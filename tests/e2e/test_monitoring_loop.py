"""The closed loop on a real instance, warehouse, GX project and MLflow store: a drifted landing
file is ingested by the landing sensor, scored and reported on by the monitor sensor, and the
drift sensor's retrain run carries the triggering report into the new model's lineage."""

import pytest
from dagster import AssetCheckSeverity, AssetKey, DagsterEventType, DagsterInstance

from tests.support import check_evaluations, replay_day, tick, write_landing

pytestmark = pytest.mark.e2e
HISTORY = [f"2013-06-{d:02d}" for d in range(1, 11)]
DRIFTED_DAY = "2013-06-11"


def drifted(day: str):
    """A real day, with a heat wave, a storm and a ground stop in it. The heat comes as fast as
    a real night can bring it (+12 °F: `temperature_continuous` blocks a jump of more than 18 °F
    across midnight as a broken feed, e.g. readings in °C)."""
    flights, weather = replay_day("flights", day), replay_day("weather", day)
    shifts = {"temp": (12, None), "dewp": (30, 0), "pressure": (-40, 0), "wind_speed": (25, 0),
              "visib": (-8, 0), "humid": (30, 0)}  # column: (change, lowest plausible value)
    for col, (change, lowest) in shifts.items():
        weather[col] = (weather[col].astype(float) + change).clip(lower=lowest, upper=100 if col == "humid" else None)
    flights["dep_delay"] = flights["dep_delay"].astype(float) + 120  # every departure two hours late
    return flights, weather


def run(defs, instance, job: str, request=None, **kwargs):
    kw = dict(instance=instance, raise_on_error=True, **kwargs)
    if request is not None:
        kw.update(tags=request.tags, partition_key=request.partition_key)
        kw.setdefault("run_config", request.run_config)
    return defs.resolve_job_def(job).execute_in_process(**kw)


def test_drifted_landing_file_leads_to_a_retrain_tagged_with_the_report(workdir, monkeypatch):
    from pipelines.definitions import build_definitions
    from pipelines.orchestration.sensors import drift_sensor, landing_sensor, monitor_sensor
    from resources.data_quality import GreatExpectations
    from resources.registry import ModelRegistry
    from resources.source import FlightSource
    from resources.warehouse import Warehouse

    data = workdir["data"]
    monkeypatch.setenv("FLIGHTS_SOURCE", "landing")
    monkeypatch.setenv("FLIGHTS_LANDING_DIR", str(workdir["landing"]))
    monkeypatch.setenv("FLIGHTS_DATA_DIR", str(data))
    # the first model's retrain (by hand, as of the last history day) counts for the cooldown: the
    # drifted day right after it is judged here without one
    monkeypatch.setenv("FLIGHTS_RETRAIN_COOLDOWN_DAYS", "0")
    # the loop, not the threshold, is under test: the drifted day is judged by a share of 0.3
    monkeypatch.setenv("FLIGHTS_DRIFT_SHARE", "0.3")
    registry = ModelRegistry(tracking_uri=workdir["mlflow_uri"], artifact_root=str(data / "mlartifacts"))
    defs = build_definitions({
        "source": FlightSource(mode="landing", landing_dir=str(workdir["landing"])),
        "warehouse": Warehouse(url=workdir["warehouse_url"]),
        "great_expectations": GreatExpectations(),
        "model_registry": registry,
    })
    instance = DagsterInstance.from_config(str(workdir["home"]))

    # the sensors are turned on with an empty landing folder and no model
    cursors = {s: tick(s, instance, None)[1] for s in (landing_sensor, monitor_sensor, drift_sensor)}

    # history: ten real days, backfilled as one run; the first model trained on them
    for day in HISTORY:
        write_landing(workdir["landing"], "flights", day, replay_day("flights", day))
        write_landing(workdir["landing"], "weather", day, replay_day("weather", day))
    _, cursors[landing_sensor], _ = tick(landing_sensor, instance, cursors[landing_sensor])  # seen, settling
    requests, cursors[landing_sensor], _ = tick(landing_sensor, instance, cursors[landing_sensor])
    assert sorted(r.partition_key for r in requests) == HISTORY  # one request per new day
    run(defs, instance, "ingest_job", tags={"dagster/asset_partition_range_start": HISTORY[0],
                                            "dagster/asset_partition_range_end": HISTORY[-1]})
    window = {"window_days": 10, "min_rows": 500}
    run(defs, instance, "retrain_job", run_config={"ops": {"training_set": {"config": {"end_day": HISTORY[-1], **window}}}})
    assert registry.champion().version == "1"
    _, cursors[monitor_sensor], _ = tick(monitor_sensor, instance, cursors[monitor_sensor])  # history seen

    # a drifted day lands
    flights, weather = drifted(DRIFTED_DAY)
    write_landing(workdir["landing"], "flights", DRIFTED_DAY, flights)
    write_landing(workdir["landing"], "weather", DRIFTED_DAY, weather)
    _, cursors[landing_sensor], _ = tick(landing_sensor, instance, cursors[landing_sensor])  # seen, settling
    (request,), cursors[landing_sensor], _ = tick(landing_sensor, instance, cursors[landing_sensor])
    assert request.partition_key == DRIFTED_DAY
    run(defs, instance, "ingest_job", request)

    (request,), cursors[monitor_sensor], _ = tick(monitor_sensor, instance, cursors[monitor_sensor])
    assert request.partition_key == DRIFTED_DAY
    run(defs, instance, "monitor_job", request)

    (request,), cursors[drift_sensor], _ = tick(drift_sensor, instance, cursors[drift_sensor])
    assert request.run_key == f"drift_sensor:{DRIFTED_DAY}"
    config = {"ops": {"training_set": {"config": {**request.run_config["ops"]["training_set"]["config"], **window}}}}
    result = run(defs, instance, "retrain_job", request, run_config=config)

    # the retrain run and the model it registered name the report that triggered them
    tags = instance.get_run_by_id(result.run_id).tags
    assert tags["trigger"] == "drift_sensor" and tags["trigger.asset"] == "drift_report"
    assert tags["trigger.partition"] == DRIFTED_DAY and "dataset drift" in tags["trigger.reason"]
    report = instance.fetch_materializations(AssetKey("drift_report"), limit=1).records[0]
    assert tags["trigger.storage_id"] == str(report.storage_id) and report.asset_materialization.partition == DRIFTED_DAY
    version = registry.record("2")
    assert version.trigger.partition == DRIFTED_DAY and version.trigger.kind == "drift_sensor"
    assert version.trigger.as_of == DRIFTED_DAY and version.build.dagster_run_id == result.run_id
    metadata = report.asset_materialization.metadata
    assert metadata["dataset_drift"].value is True
    # the day's snapshot is in the (local) Evidently workspace, filed under the replayed day, linked from the metadata
    from evidently.ui.workspace import Workspace

    assert metadata["report"].value.startswith("http://127.0.0.1:8000/projects/")  # `make evidently-ui`
    project_id, snapshot_id = metadata["report"].value.split("/projects/")[1].split("/reports/")
    assert metadata["evidently_snapshot_id"].value == snapshot_id
    snapshot = Workspace(str(data / "evidently")).get_run(project_id, snapshot_id)
    assert snapshot.timestamp.date().isoformat() == DRIFTED_DAY and snapshot.tags == ["drift"]
    assert (DRIFTED_DAY, True) in {(p, passed) for p, passed, _ in check_evaluations(instance, "drift_report", "snapshot_uploaded")}
    assert tick(drift_sensor, instance, cursors[drift_sensor])[0] == []  # nothing twice

    # the audit: the new model's provenance chain, and a rebuild from its recorded inputs
    from pipelines.commands.provenance import as_text, provenance
    from pipelines.commands.reproduce import reproduce

    chain = provenance("2", instance=instance, registry=registry)
    assert chain["why"]["trigger"]["kind"] == "drift_sensor"
    assert chain["why"]["trigger"]["partition"] == DRIFTED_DAY
    assert chain["why"]["trigger"]["report"]["dataset_drift"] is True  # the report record itself
    assert chain["why"]["dagster_run_id"] == result.run_id
    days = [d["day"] for d in chain["data"]["days"]]
    assert days == [*HISTORY[1:], DRIFTED_DAY] and chain["data"]["all_data_versions_match"]
    for day in chain["data"]["days"]:  # every training day: validation counts and checks
        assert day["flights"]["rows_in"] == day["flights"]["rows_valid"] + day["flights"]["rows_quarantined"]
        assert set(day["flights"]["checks"]) == {"bad_row_share_within_limit", "rows_in_equal_valid_plus_quarantined",
                                                 "null_limits"}
        assert set(day["flights"]["checks"].values()) == {"passed"}
    assert chain["evaluation"]["gate_decision"] in {"promoted", "rejected"} and chain["evaluation"]["gate_reasons"]
    assert "test_champion_roc_auc" in chain["evaluation"]["mlflow_metrics"]  # judged against v1
    assert chain["rebuild"]["git_commit"] and len(chain["rebuild"]["requirements_lock_sha256"]) == 64
    assert any(r.startswith("scikit-learn==") for r in chain["rebuild"]["pinned_requirements"])
    assert "drift_sensor" in as_text(chain) and DRIFTED_DAY in as_text(chain)

    rebuilt = reproduce("2", registry=registry, warehouse=Warehouse(url=workdir["warehouse_url"]))
    assert rebuilt["reproduced"], rebuilt
    assert rebuilt["max_abs_prediction_difference"] == 0.0 and rebuilt["rows_compared"] > 5000

    # the Evidently service is down when the day is reported again: the verdicts are recorded all the
    # same, the upload is retried and then failed as a WARN check, the run succeeds, nothing is lost
    from tests.support import free_port

    down = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("FLIGHTS_EVIDENTLY_URL", down)
    monkeypatch.setenv("FLIGHTS_STORE_RETRIES", "1")
    monkeypatch.setenv("FLIGHTS_STORE_RETRY_DELAY", "0.1")
    again = run(defs, instance, "monitor_job", partition_key=DRIFTED_DAY)
    assert again.success
    latest = instance.fetch_materializations(AssetKey("drift_report"), limit=1).records[0]
    assert latest.run_id == again.run_id
    meta = latest.asset_materialization.metadata
    assert meta["dataset_drift"].value is True and meta["drift_share"].value == metadata["drift_share"].value
    assert meta["report"].value.startswith(f"not uploaded: Evidently UI service {down} unreachable after 2 attempts")
    failed = [(p, passed) for p, passed, run_id in check_evaluations(instance, "drift_report", "snapshot_uploaded")
              if run_id == again.run_id]
    assert failed == [(DRIFTED_DAY, False)]
    record = instance.get_records_for_run(again.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION).records
    severities = {r.event_log_entry.dagster_event.event_specific_data.check_name:
                  r.event_log_entry.dagster_event.event_specific_data.severity for r in record}
    assert severities["snapshot_uploaded"] == AssetCheckSeverity.WARN
    assert Workspace(str(data / "evidently")).get_run(project_id, snapshot_id) is not None  # the earlier snapshot kept
