"""Sensors on a real (temporary) Dagster instance: report records as the monitoring assets write
them, ticks as the daemon runs them."""

import json

import pytest
from dagster import (
    AssetKey,
    AssetMaterialization,
    DagsterRunStatus,
    instance_for_test,
)

from pipelines.orchestration.sensors import drift_sensor, landing_sensor, last_retrain_day, monitor_sensor, performance_sensor
from tests.support import tick


@pytest.fixture
def instance(monkeypatch):
    monkeypatch.setenv("FLIGHTS_RETRAIN_COOLDOWN_DAYS", "7")  # the cooldown these tests count with
    with instance_for_test() as inst:
        yield inst


def drift_day(instance, day: str, drifted: bool):
    share = 0.74 if drifted else 0.11
    instance.report_runless_asset_event(AssetMaterialization(
        "drift_report", partition=day,
        metadata={"dataset_drift": drifted, "drift_share": share, "drifted_columns": round(share * 19),
                  "monitored_columns": 19, "drift_share_threshold": 0.5},
    ))


def record_retrain_run(instance, request):
    """What the daemon does with a run request: a run of retrain_job with the request's tags."""
    from pipelines.definitions import defs

    job = defs.resolve_job_def("retrain_job")
    return instance.create_run_for_job(job, run_config=request.run_config, tags=request.tags,
                                       status=DagsterRunStatus.SUCCESS)


def test_drift_sensor_one_event_one_retrain_then_cooldown(instance):
    drift_day(instance, "2013-05-01", drifted=True)  # history before the sensor was turned on
    requests, cursor, skip = tick(drift_sensor, instance, None)
    assert requests == [] and "watching drift_report" in skip  # first tick: history is not acted on

    drift_day(instance, "2013-05-02", drifted=False)  # a normal day
    requests, cursor, skip = tick(drift_sensor, instance, cursor)
    assert requests == [] and "no threshold crossed" in skip

    drift_day(instance, "2013-05-03", drifted=True)  # injected drift
    requests, cursor, _ = tick(drift_sensor, instance, cursor)
    assert len(requests) == 1
    req = requests[0]
    assert req.job_name == "retrain_job" and req.run_key == "drift_sensor:2013-05-03"
    assert req.tags["trigger"] == "drift_sensor" and req.tags["trigger.asset"] == "drift_report"
    assert req.tags["trigger.partition"] == "2013-05-03" and "14 of 19" in req.tags["trigger.reason"]
    assert req.run_config["ops"]["training_set"]["config"]["end_day"] == "2013-05-03"
    record_retrain_run(instance, req)
    assert last_retrain_day(instance) == "2013-05-03"

    assert tick(drift_sensor, instance, cursor)[0] == []  # a repeated tick: nothing new, nothing asked

    drift_day(instance, "2013-05-06", drifted=True)  # 3 days later: within the 7-day cooldown
    requests, cursor, skip = tick(drift_sensor, instance, cursor)
    assert requests == [] and "cooldown" in skip

    drift_day(instance, "2013-05-10", drifted=True)  # 7 days later: a new retrain
    requests, cursor, _ = tick(drift_sensor, instance, cursor)
    assert [r.run_key for r in requests] == ["drift_sensor:2013-05-10"]


def test_a_retrain_launched_by_hand_counts_for_the_cooldown(instance):
    """A retrain from the CLI or the Launchpad carries no sensor tags: its config's end_day is the
    day it was trained up to, and a drifted day within the cooldown after it asks for nothing."""
    from pipelines.definitions import defs

    job = defs.resolve_job_def("retrain_job")
    instance.create_run_for_job(job, run_config={"ops": {"training_set": {"config": {"end_day": "2013-03-01"}}}},
                                status=DagsterRunStatus.SUCCESS)
    instance.create_run_for_job(job, status=DagsterRunStatus.SUCCESS)  # "the newest day": no day to count
    assert last_retrain_day(instance) == "2013-03-01"
    _, cursor, _ = tick(drift_sensor, instance, None)
    drift_day(instance, "2013-03-05", drifted=True)
    requests, cursor, skip = tick(drift_sensor, instance, cursor)
    assert requests == [] and "retrain as of 2013-03-01 is within the 7-day cooldown" in skip
    drift_day(instance, "2013-03-09", drifted=True)
    assert [r.run_key for r in tick(drift_sensor, instance, cursor)[0]] == ["drift_sensor:2013-03-09"]


def test_drift_sensor_asks_once_for_several_drifted_days_in_one_tick(instance):
    _, cursor, _ = tick(drift_sensor, instance, None)
    for day in ("2013-07-01", "2013-07-02", "2013-07-03"):
        drift_day(instance, day, drifted=True)
    requests, _, _ = tick(drift_sensor, instance, cursor)
    assert [r.run_key for r in requests] == ["drift_sensor:2013-07-01"]  # the others fall in its cooldown


def test_performance_sensor_acts_on_the_recorded_verdict(instance):
    _, cursor, _ = tick(performance_sensor, instance, None)
    for day, degraded in (("2013-08-01", False), ("2013-08-02", True)):
        instance.report_runless_asset_event(AssetMaterialization(
            "performance_report", partition=day,
            metadata={"performance_degraded": degraded, "trailing_roc_auc": 0.62, "roc_auc_drop": 0.08,
                      "evaluation_roc_auc": 0.70, "roc_auc_drop_threshold": 0.05},
        ))
    requests, _, _ = tick(performance_sensor, instance, cursor)
    assert [r.run_key for r in requests] == ["performance_sensor:2013-08-02"]
    assert requests[0].tags["trigger.asset"] == "performance_report"


def test_monitor_sensor_waits_for_a_deployed_model(instance):
    _, cursor, _ = tick(monitor_sensor, instance, None)
    instance.report_runless_asset_event(AssetMaterialization("flight_features", partition="2013-09-01"))
    requests, cursor2, skip = tick(monitor_sensor, instance, cursor)
    assert requests == [] and "wait for a deployed model" in skip and cursor2 == cursor
    instance.report_runless_asset_event(AssetMaterialization("champion_model", metadata={"champion": "m v1"}))
    requests, _, _ = tick(monitor_sensor, instance, cursor)
    assert [(r.partition_key, r.tags["trigger"]) for r in requests] == [("2013-09-01", "monitor_sensor")]


def test_landing_sensor_ingests_new_and_changed_days(instance, tmp_path, monkeypatch):
    monkeypatch.setenv("FLIGHTS_SOURCE", "landing")
    monkeypatch.setenv("FLIGHTS_LANDING_DIR", str(tmp_path))
    (tmp_path / "flights_2013-03-01.csv").write_text("year\n2013\n")  # there before the sensor
    _, cursor, skip = tick(landing_sensor, instance, None)
    assert "1 day(s) already there" in skip
    (tmp_path / "flights_2013-03-04.csv").write_text("year\n2013\n")
    (tmp_path / "weather_2013-03-04.csv").write_text("year\n2013\n")
    (tmp_path / "weather_2013-03-05.csv").write_text("year\n2013\n")  # weather alone: wait
    (tmp_path / "flights_2014-01-01.csv").write_text("year\n2014\n")  # outside the partitions
    (tmp_path / "notes.txt").write_text("not a daily file")
    requests, cursor, skip = tick(landing_sensor, instance, cursor)  # first seen: wait for them to settle
    assert requests == [] and "2013-03-04, 2013-03-05 to settle" in skip
    requests, cursor, _ = tick(landing_sensor, instance, cursor)
    assert [r.partition_key for r in requests] == ["2013-03-04"]
    assert requests[0].tags["trigger.files"] == "flights_2013-03-04.csv, weather_2013-03-04.csv"
    requests, cursor, skip = tick(landing_sensor, instance, cursor)
    assert requests == [] and "2014-01-01" in skip  # nothing new; the odd day is named
    (tmp_path / "flights_2013-03-04.csv").write_text("year\n2013\n2013\n")  # a corrected file
    requests, cursor, _ = tick(landing_sensor, instance, cursor)
    assert requests == []
    requests, cursor, _ = tick(landing_sensor, instance, cursor)
    assert [r.partition_key for r in requests] == ["2013-03-04"]
    monkeypatch.setenv("FLIGHTS_SOURCE", "replay")
    assert tick(landing_sensor, instance, cursor)[0] == []


def test_landing_sensor_takes_a_file_only_once_it_has_settled(instance, tmp_path, monkeypatch):
    """A file still being copied (it grows between two ticks) is not ingested half-written: the
    sensor requests the day at the first tick that sees the same size and mtime as the one before."""
    monkeypatch.setenv("FLIGHTS_SOURCE", "landing")
    monkeypatch.setenv("FLIGHTS_LANDING_DIR", str(tmp_path))
    _, cursor, _ = tick(landing_sensor, instance, None)
    path, looks = tmp_path / "flights_2013-03-06.csv", []
    body = "year,month,day\n" + "2013,3,6\n" * 2000
    with path.open("w") as copying:  # a slow copy: a chunk arrives before each look
        for start in range(0, len(body), len(body) // 3 + 1):
            copying.write(body[start:start + len(body) // 3 + 1])
            copying.flush()
            requests, cursor, skip = tick(landing_sensor, instance, cursor)
            looks.append((path.stat().st_size, [r.partition_key for r in requests]))
    assert all(requested == [] for _, requested in looks) and len({size for size, _ in looks}) == 3, looks
    requests, cursor, _ = tick(landing_sensor, instance, cursor)  # the copy is done: the same size again
    assert [r.partition_key for r in requests] == ["2013-03-06"]
    assert tick(landing_sensor, instance, cursor)[0] == []  # taken once
    old = {"2013-03-06": json.loads(cursor)["taken"]["2013-03-06"]}  # a cursor written before files had to settle
    assert tick(landing_sensor, instance, json.dumps(old))[0] == []


def test_a_drifted_day_flagged_as_a_broken_feed_starts_no_retrain_and_is_alerted(instance, monkeypatch):
    """The report of a day whose feed check failed carries `feed_incident` (assets/monitoring/asset.py):
    its crossed threshold is said, not acted on; the same day released (no `feed_incident`) retrains."""
    from pipelines.orchestration.alerts import verdict_alert_of

    cursor = tick(drift_sensor, instance, None)[1]
    incident = "flight_features check `weather_coverage` (WARN) on 2013-05-03: partition 2013-05-03, column weather: ..."
    instance.report_runless_asset_event(AssetMaterialization("drift_report", partition="2013-05-03", metadata={
        "dataset_drift": True, "drift_share": 0.74, "drifted_columns": 14, "monitored_columns": 19,
        "drift_share_threshold": 0.5, "feed_incident": incident, "feed_checks": ["weather_coverage"]}))
    requests, cursor, skip = tick(drift_sensor, instance, cursor)
    assert requests == [] and "feed incident, not retraining" in skip and "2013-05-03 (weather_coverage)" in skip
    record = instance.fetch_materializations(AssetKey("drift_report"), limit=1).records[0]
    alert = verdict_alert_of("drift_report", record)
    assert alert.kind == "feed_incident" and alert.title == "Feed incident on 2013-05-03: not retraining (weather_coverage)"
    assert incident in alert.lines and any("release_day_job" in line for line in alert.lines)

    drift_day(instance, "2013-05-03", drifted=True)  # the day released after review: its report acted on
    requests, _, _ = tick(drift_sensor, instance, cursor)
    assert [r.run_key for r in requests] == ["drift_sensor:2013-05-03"]


def day_job_run(instance, day: str):
    """A run of day_job that has built `day`'s features (what the replay clock's run records first)."""
    from dagster import DagsterEvent, DagsterEventType
    from dagster._core.events import StepMaterializationData

    from pipelines.definitions import defs

    run = instance.create_run_for_job(defs.resolve_job_def("day_job"), tags={"dagster/partition": day},
                                      status=DagsterRunStatus.STARTED)
    instance.report_dagster_event(DagsterEvent(
        DagsterEventType.ASSET_MATERIALIZATION.value, job_name="day_job",
        event_specific_data=StepMaterializationData(AssetMaterialization("flight_features", partition=day))), run.run_id)
    return run


def test_monitor_sensor_leaves_a_day_to_the_day_job_run_that_reports_it_unless_that_run_failed(instance):
    from dagster import DagsterEvent, DagsterEventType

    instance.report_runless_asset_event(AssetMaterialization("champion_model", metadata={"champion": "m v1"}))
    _, cursor, _ = tick(monitor_sensor, instance, None)
    running = day_job_run(instance, "2013-09-02")
    requests, cursor2, skip = tick(monitor_sensor, instance, cursor)
    assert requests == [] and f"day_job run {running.run_id[:8]} builds and reports 2013-09-02" in skip
    assert cursor2 == cursor  # the day is not passed over while its run may still fail
    instance.report_dagster_event(DagsterEvent(DagsterEventType.RUN_SUCCESS.value, job_name="day_job"), running.run_id)
    requests, cursor, skip = tick(monitor_sensor, instance, cursor)
    assert requests == [] and "1 new day(s) reported by the day_job run" in skip and int(cursor) > int(cursor2)

    failed = day_job_run(instance, "2013-09-03")
    instance.report_run_failed(instance.get_run_by_id(failed.run_id))
    instance.report_runless_asset_event(AssetMaterialization("flight_features", partition="2013-09-04"))  # ingest_job's
    requests, _, _ = tick(monitor_sensor, instance, cursor)
    assert [(r.partition_key, r.job_name) for r in requests] == [("2013-09-03", None), ("2013-09-04", None)]
