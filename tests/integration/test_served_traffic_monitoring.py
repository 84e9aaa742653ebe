"""Served traffic is monitored: the flights the scoring server answered (recorded by
`ServedTrafficRecorder`, as the server records them) are in the day's drift report beside the
batch-scored flights, in their own Evidently snapshot; served traffic that drifted turns the
day's `no_dataset_drift` check to a WARN failure even when the batch-scored flights did not. The
checks' verdicts are the tests the day's Evidently snapshots carry, as the workspace stores them.
Flights asked by flight (`/predict`, recorded with their key) are judged against their arrivals in
the day's performance report: their own ROC AUC, a check of its own, a line in the alert."""

import json

from dagster import AssetCheckSeverity, AssetKey, DagsterEventType, DagsterInstance

from tests.support import WebhookReceiver, check_evaluations, replay_day, tick, write_landing

HISTORY = [f"2013-06-{d:02d}" for d in range(1, 11)]
DAY = "2013-06-11"


def test_served_traffic_is_in_the_drift_report(workdir, resources, monkeypatch):
    from pipelines.definitions import build_definitions
    from pipelines.orchestration.alerts import verdict_alert
    from pipelines.serving.traffic import ServedTrafficRecorder
    from resources.schemas import flight_features
    from served_model.features import model_input
    from tests.support import json_records

    monkeypatch.setenv("FLIGHTS_DATA_DIR", str(workdir["data"]))
    registry, warehouse = resources["model_registry"], resources["warehouse"]
    defs = build_definitions(resources)
    instance = DagsterInstance.from_config(str(workdir["home"]))
    for day in [*HISTORY, DAY]:
        write_landing(workdir["landing"], "flights", day, replay_day("flights", day))
        write_landing(workdir["landing"], "weather", day, replay_day("weather", day))
    defs.resolve_job_def("ingest_job").execute_in_process(instance=instance, tags={
        "dagster/asset_partition_range_start": HISTORY[0], "dagster/asset_partition_range_end": DAY})
    defs.resolve_job_def("retrain_job").execute_in_process(instance=instance, run_config={"ops": {"training_set": {
        "config": {"end_day": HISTORY[-1], "window_days": 10, "min_rows": 500}}}})
    champion = registry.champion()

    # the day's flights as clients sent them, in a heat wave the batch data does not have
    rows = model_input(warehouse.read(flight_features, [DAY]))
    rows[["temp", "dewp"]] += 40
    rows["visib"] = 0.0
    model = registry.load(champion.version)
    # served while DAY was the replay's 'today' (before its batch landed): the server's clock says DAY
    recorder = ServedTrafficRecorder(warehouse, clock=lambda at: DAY)
    for start in range(0, len(rows), 25):  # requests of 25 flights, answered as the server answers
        chunk = rows.iloc[start:start + 25]
        answer = {"predictions": model.predict_proba(chunk).tolist()}
        recorder.offer(champion.version, json.dumps({"inputs": json_records(chunk)}).encode(),
                       json.dumps(answer).encode(), 1.0e9)
    recorder.offer(champion.version, b"not json", b"{}", 1.0e9)  # counted, never raised
    assert recorder.flush() == len(rows) and recorder.unreadable == 1
    # and flights asked by what a caller knows (/predict): the server's FlightDesk answers them from the
    # warehouse's day with the champion's own scorer; each answer recorded with its flight's key
    from pipelines.serving.by_flight import DayContexts, FlightDesk
    from served_model.model import FastScorer

    class Served:
        version, scorer = champion.version, FastScorer(model)

    desk, asked = FlightDesk(DayContexts(warehouse, poll_seconds=3600)), warehouse.read(flight_features, [DAY]).head(300)
    for r in asked.itertuples(index=False):
        answer = desk.answer({"carrier": r.carrier, "flight": int(r.flight), "origin": r.origin, "dest": r.dest,
                              "scheduled_departure": r.sched_dep_ts[:16]}, Served)
        recorder.offer_answer(champion.version, json.dumps(answer).encode(), 1.0e9)
    assert recorder.flush() == len(asked)
    # a stale caller (the drills' incident): 30 flights asked with the departure of a week ago
    from pipelines.commands.drills.incidents import stale_served_features

    for r in asked.head(30).itertuples(index=False):
        answer = desk.answer(stale_served_features({"carrier": r.carrier, "flight": int(r.flight), "origin": r.origin,
                                                    "dest": r.dest, "scheduled_departure": r.sched_dep_ts[:16]}), Served)
        assert answer["flight"]["scheduled_departure"].startswith("2013-06-04")
        recorder.offer_answer(champion.version, json.dumps(answer).encode(), 1.0e9)
    assert recorder.flush() == 30

    alerts_cursor = tick(verdict_alert, instance, None)[1]
    # a performance threshold every day crosses (a drop of -1): the day is also degraded; the served
    # heat wave is judged by a drift share of 0.3 (it drifts the weather columns, under the default 0.45)
    result = defs.resolve_job_def("monitor_job").execute_in_process(instance=instance, partition_key=DAY, run_config={
        "ops": {"performance_report": {"config": {"roc_auc_drop": -1.0}}, "drift_report": {"config": {"drift_share": 0.3}}}})
    assert result.success
    meta = {k: v.value for k, v in instance.get_latest_materialization_event(
        AssetKey("drift_report")).asset_materialization.metadata.items()}
    assert meta["served_rows"] == len(rows) + len(asked) + 30 and meta["served_model_version"] == champion.version
    # the stale requests are named, left out of the served drift, and fail their own WARN check
    assert meta["served_asked_by_flight"] == len(asked) + 30 and meta["served_stale_rows"] == 30
    assert "30 of 330 flights asked by flight on 2013-06-11" in meta["served_stale"] and "2013-06-04" in meta["served_stale"]
    ((_, current, _),) = check_evaluations(instance, "drift_report", "served_requests_current")
    assert current is False
    assert meta["served_dataset_drift"] is True and "temp" in meta["served_drifted_columns"]
    assert str(meta["served_report"]).startswith("http") and meta["served_evidently_snapshot_id"] != meta["evidently_snapshot_id"]
    ((partition, passed, _),) = check_evaluations(instance, "drift_report", "no_dataset_drift")
    assert partition == DAY and passed is False
    (event,) = [r for r in instance.get_records_for_run(result.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION).records
                if r.event_log_entry.dagster_event.event_specific_data.check_name == "no_dataset_drift"]
    assert event.event_log_entry.dagster_event.event_specific_data.severity == AssetCheckSeverity.WARN

    # the checks' verdicts are the Evidently tests of the day's snapshots, as the workspace stores them
    from evidently.ui.workspace import Workspace

    from assets.monitoring.logic import DRIFT_COLUMNS

    def stored_tests(report: dict, prefix: str = "") -> list[str]:
        project_id = str(report[f"{prefix}report"]).split("/projects/")[1].split("/")[0]
        stored = Workspace(str(workdir["data"] / "evidently")).get_run(project_id, report[f"{prefix}evidently_snapshot_id"])
        return [str(getattr(t.status, "value", t.status)) for r in stored.metric_results.values() for t in r.tests]

    batch, served = stored_tests(meta), stored_tests(meta, "served_")
    assert served == ["FAIL"] and batch == ["FAIL" if meta["dataset_drift"] else "SUCCESS"] and passed is False
    performance = {k: v.value for k, v in instance.get_latest_materialization_event(
        AssetKey("performance_report")).asset_materialization.metadata.items()}
    ((_, performance_passed, _),) = check_evaluations(instance, "performance_report", "performance_not_degraded")
    assert stored_tests(performance) == ["FAIL"] and performance_passed is False and performance["performance_degraded"] is True
    # what was served by flight, judged against the flights' arrivals: its own ROC AUC, as a check of its own
    from sklearn.metrics import roc_auc_score

    from resources.schemas import predictions

    batch = asked.merge(warehouse.read(predictions, [DAY]), on=["partition_date", "row_number"])
    batch = batch[batch["is_late"].notna()]
    assert performance["served_answers"] == performance["served_flights"] == len(asked)
    assert performance["served_flights_matched"] == len(batch) > 50
    assert performance["served_roc_auc"] == round(roc_auc_score(batch["is_late"].astype(int), batch["probability_late"]), 4)
    ((_, served_passed, _),) = check_evaluations(instance, "performance_report", "served_performance_not_degraded")
    assert served_passed is False and performance["served_performance_degraded"] is True  # the floor of a drop of -1
    # the reports' tables are Dagster tables; the rows judged are the materialization's row count
    assert {r.data["column"] for r in meta["columns"].records} == set(DRIFT_COLUMNS)
    assert [c.name for c in meta["columns"].schema.columns] == ["column", "method", "score", "threshold", "drifted"]
    assert meta["dagster/row_count"] == meta["current_rows"] and [r.data["day"] for r in meta["summary"].records] == [DAY]
    assert performance["dagster/row_count"] == performance["labelled_rows"] == sum(
        r.data["rows"] for r in performance["calibration"].records)

    # and people are told: the drifted and the degraded day, each naming the day, the version, the run
    hook = WebhookReceiver()
    monkeypatch.setenv("FLIGHTS_ALERT_WEBHOOK_URL", hook.url)
    try:
        tick(verdict_alert, instance, alerts_cursor)
        texts = hook.texts()
    finally:
        hook.close()
    drift = next(t for t in texts if t.startswith(":large_yellow_circle: *Dataset drift on 2013-06-11"))
    assert "served traffic drifted too" in drift and f"model v{champion.version}" in drift and result.run_id in drift
    assert "stale served requests: 30 of 330" in drift
    degraded = next(t for t in texts if "*Degraded performance on 2013-06-11 (performance_report)*" in t)
    assert "threshold -1.0" in degraded and result.run_id in degraded
    assert f"what was served: served ROC AUC {performance['served_roc_auc']:.4f} over {len(batch)} answers" in degraded
