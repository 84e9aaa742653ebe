"""Promotion modes on a real instance, warehouse and MLflow store, with alerts to a local webhook
and a local SMTP server:

- shadow: a candidate that passes the gate becomes the challenger, scores each new day beside the
  champion, and after FLIGHTS_SHADOW_DAYS labelled days `challenger_sensor` promotes or drops it
  as the pooled figures say;
- approve: the challenger waits; approving with the wrong version is refused (no alias moves, the
  failed run is alerted); a challenger nobody decides on expires, with a record;
- every event reaches the webhook and the mailbox, naming the version and linking to its run.
"""

from dagster import DagsterInstance, build_run_status_sensor_context

from tests.support import defined_columns, land_and_ingest, latest, retrain, run, tick

DAYS = [f"2013-06-{d:02d}" for d in range(1, 17)]
TRAIN_END = "2013-06-10"


def test_shadow_then_approve_then_expiry_with_alerts(workdir, resources, monkeypatch, alerting):
    from pipelines.definitions import build_definitions
    from pipelines.orchestration.alerts import run_failure_alert, verdict_alert
    from pipelines.orchestration.deployment import challenger_sensor

    hook, mail = alerting
    monkeypatch.setenv("FLIGHTS_DATA_DIR", str(workdir["data"]))
    monkeypatch.setenv("FLIGHTS_SHADOW_DAYS", "3")
    monkeypatch.setenv("FLIGHTS_CHALLENGER_EXPIRY_DAYS", "4")
    registry = resources["model_registry"]
    defs = build_definitions(resources)
    instance = DagsterInstance.from_config(str(workdir["home"]))
    land_and_ingest(defs, instance, workdir["landing"], DAYS, ingest_through=TRAIN_END)
    alerts_cursor = tick(verdict_alert, instance, None)[1]  # turned on: history is not alerted on
    retrain(defs, instance, "auto", TRAIN_END)
    assert registry.champion().version == "1"

    # shadow: v2 passes the (overridden) gate and waits as the challenger
    retrain(defs, instance, "shadow", TRAIN_END, force_promote=True, override_reason="shadow test")
    assert (registry.champion().version, registry.challenger().version) == ("1", "2")
    assert latest(instance, "champion_model")["event"] == "challenger"
    assert tick(challenger_sensor, instance, None)[2] == "shadow challenger v2: no verdict yet"

    # three new days: ingested, scored by both, reported; the verdict comes on the third
    shadow_days = ["2013-06-11", "2013-06-12", "2013-06-13"]
    for day in shadow_days:
        run(defs, instance, "ingest_job", partition_key=day)
        run(defs, instance, "monitor_job", partition_key=day)
    from resources.schemas import predictions

    for day in shadow_days:  # each day's champion scores: the rows written (read back) and the table's columns
        scored = latest(instance, "predictions", day)
        assert scored["dagster/row_count"] == resources["warehouse"].count_by_partition(predictions, [day])[day] > 0
        assert scored["dagster/row_count"] == scored["rows"]
    assert defined_columns("predictions") == [c.name for c in predictions.columns]
    meta = latest(instance, "performance_report", shadow_days[-1])
    assert meta["shadow_challenger"] == "2" and meta["shadow_days"] == 3
    assert latest(instance, "performance_report", shadow_days[0])["shadow_verdict"] == "waiting"
    ahead = meta["shadow_challenger_roc_auc"] - meta["shadow_champion_roc_auc"]
    assert meta["shadow_verdict"] == ("promote" if ahead >= 0.002 else "drop")
    (request,), _, _ = tick(challenger_sensor, instance, None)
    run(defs, instance, request.job_name, request)
    expected = "2" if meta["shadow_verdict"] == "promote" else "1"
    assert registry.champion().version == expected and registry.challenger() is None
    shadow_event = registry.record("2").events[-1]
    assert shadow_event.kind == ("approved" if expected == "2" else "dropped") and shadow_event.by == "shadow_verdict"
    assert "labelled day" in shadow_event.reason

    # approve: v3 waits; the wrong version is refused and nothing moves; the failed run is alerted
    retrain(defs, instance, "approve", TRAIN_END, force_promote=True, override_reason="approve test")
    champion = registry.champion().version
    assert registry.challenger().version == "3"
    bad = run(defs, instance, "approve_challenger_job", raise_on_error=False, run_config={"ops": {"approve_challenger": {
        "config": {"approver": "ana", "reason": "ok", "version": "2"}}}})
    assert not bad.success
    assert (registry.champion().version, registry.challenger().version) == (champion, "3")
    failure = build_run_status_sensor_context(sensor_name="run_failure_alert", dagster_instance=instance,
                                              dagster_run=bad.dagster_run, dagster_event=bad.get_run_failure_event())
    run_failure_alert(failure.for_run_failure())
    failed = [t for t in hook.texts() if "Run failed: approve_challenger_job" in t]
    assert failed and "v2 is not the challenger: v3 is" in failed[0] and f"/runs/{bad.run_id}" in failed[0]

    # nobody decides: trained up to 06-10, it waits on 06-13 and has expired by 06-16 (4 days)
    assert "waits for approval" in tick(challenger_sensor, instance, None)[2]
    run(defs, instance, "ingest_job", tags={"dagster/asset_partition_range_start": "2013-06-14",
                                            "dagster/asset_partition_range_end": "2013-06-16"})
    (request,), _, _ = tick(challenger_sensor, instance, None)
    assert request.run_config["ops"]["reject_challenger"]["config"]["outcome"] == "expired"
    run(defs, instance, request.job_name, request)
    assert registry.challenger() is None and registry.champion().version == champion
    assert registry.record("3").events[-1].kind == "expired"
    assert tick(challenger_sensor, instance, None)[2] == "no challenger waits"

    # every channel refusing: the tick goes on, and keeps its cursor so that the alerts come later
    with monkeypatch.context() as m:
        m.setenv("FLIGHTS_ALERT_WEBHOOK_URL", "http://127.0.0.1:9/hook")
        m.delenv("FLIGHTS_SMTP_HOST")
        m.setenv("FLIGHTS_ALERT_RETRIES", "0")
        _, kept, said = tick(verdict_alert, instance, alerts_cursor)
    assert kept == alerts_cursor and "webhook FAILED" in said and "again at the next tick" in said

    # the alerts: every deployment event, to the webhook (retried after a refusal) and by email
    tick(verdict_alert, instance, alerts_cursor)
    texts = "\n".join(hook.texts())
    for said in ("Promoted v1", "Challenger v2 waiting (shadow)", "Challenger v3 waiting (approve)",
                 "approve_challenger_job or reject_challenger_job", "Challenger v3 expired",
                 "Challenger v2 approved by shadow_verdict" if expected == "2" else "Challenger v2 dropped"):
        assert said in texts, said
    assert hook.refused == 1 and "http://dagster.test:3000/runs/" in texts
    assert all(m["blocks"] and m["metadata"]["event_payload"].get("run_id") for m in hook.received)
    subjects = [m["Subject"] for m in mail.messages]
    assert any("Challenger v3 expired" in s for s in subjects) and len(mail.messages) == len(hook.received)
    assert all(m["To"] == "ml-team@example.org" for m in mail.messages)
    assert "secret-token" not in texts
