"""The rollback watch on a real instance, warehouse and MLflow store, with alerts to a local
webhook and a local SMTP server.

The drill: v1 is trained on ten clean days of June 2013. Those days are then delivered again with
their arrival delays scrambled within each day (a feed that lost its join to the arrivals, still
in range for the expectations), and v2 is trained on them; the gate rejects it and an operator
forces it through (`force_promote`). For its first FLIGHTS_ROLLBACK_WATCH_DAYS days v1 scores
beside it; on the third labelled day the watch finds v2 worse beyond the paired bootstrap's noise,
`rollback_sensor` requests rollback_job, and `champion` goes back to v1, with the figures as the
reason on the version, in its provenance and in the alert. A champion restored by a rollback is
not watched.
"""

import numpy as np
from dagster import DagsterInstance

from tests.support import check_evaluations, land_and_ingest, latest, replay_day, retrain, run, tick, write_landing

DAYS = [f"2013-06-{d:02d}" for d in range(1, 15)]
TRAIN_END = "2013-06-10"
WATCHED = ["2013-06-11", "2013-06-12", "2013-06-13"]


def test_a_worse_champion_forced_past_the_gate_is_rolled_back_after_its_watch_days(workdir, resources, monkeypatch,
                                                                                  alerting):
    from pipelines.commands.provenance import as_text, provenance
    from pipelines.definitions import build_definitions
    from pipelines.orchestration.alerts import verdict_alert
    from pipelines.orchestration.deployment import rollback_sensor
    from resources.schemas import shadow_predictions

    hook, mail = alerting
    monkeypatch.setenv("FLIGHTS_DATA_DIR", str(workdir["data"]))
    monkeypatch.setenv("FLIGHTS_ROLLBACK_WATCH_DAYS", "3")
    registry, warehouse = resources["model_registry"], resources["warehouse"]
    defs = build_definitions(resources)
    instance = DagsterInstance.from_config(str(workdir["home"]))
    land_and_ingest(defs, instance, workdir["landing"], DAYS, ingest_through=TRAIN_END)
    retrain(defs, instance, "auto", TRAIN_END)
    assert registry.champion().version == "1"

    # the broken feed: the training days again, arrival delays scrambled within each day
    rng = np.random.default_rng(7)
    for day in DAYS[:10]:
        flights = replay_day("flights", day)
        flights["arr_delay"] = rng.permutation(flights["arr_delay"].to_numpy())
        write_landing(workdir["landing"], "flights", day, flights)
    run(defs, instance, "ingest_job", tags={"dagster/asset_partition_range_start": DAYS[0],
                                            "dagster/asset_partition_range_end": TRAIN_END})
    alerts_cursor = tick(verdict_alert, instance, None)[1]
    watch_cursor = tick(rollback_sensor, instance, None)[1]  # turned on: history is not acted on
    retrain(defs, instance, "auto", TRAIN_END, force_promote=True, override_reason="drill: ship the retrain now")
    assert registry.champion().version == "2" and registry.by_alias("previous").version == "1"

    for day in WATCHED:  # the new champion's first days: v1 scores beside it
        run(defs, instance, "ingest_job", partition_key=day)
        run(defs, instance, "monitor_job", partition_key=day)
        assert latest(instance, "predictions", day)["rollback_watch"] == f"{registry.model_name} v1 scored beside the champion"
    assert set(warehouse.read(shadow_predictions, WATCHED)["model_version"]) == {"1"}
    first, last = latest(instance, "performance_report", WATCHED[0]), latest(instance, "performance_report", WATCHED[-1])
    assert first["watch_verdict"] == "waiting" and first["watch_days"] == 1
    assert (last["watch_champion"], last["watch_previous"], last["watch_days"]) == ("2", "1", 3)
    print(f"rollback watch: {last['watch_verdict']}: {last['watch_reason']}")
    assert last["watch_verdict"] == "rollback", last["watch_reason"]
    assert last["watch_difference"] < -last["watch_margin"] and last["watch_margin"] >= 0.002
    assert "paired bootstrap" in last["watch_reason"] and f"{last['watch_flights']} flights" in last["watch_reason"]
    verdicts = {day: passed for day, passed, _ in check_evaluations(instance, "performance_report",
                                                                    "champion_not_worse_than_previous")}
    assert verdicts[WATCHED[0]] is True and verdicts[WATCHED[-1]] is False

    # the sensor asks for the rollback, naming the champion it judged; the run moves the alias back
    (request,), watch_cursor, _ = tick(rollback_sensor, instance, watch_cursor)
    config = request.run_config["ops"]["rollback_champion"]["config"]
    assert (config["target_version"], config["expected_champion"], config["requested_by"]) == ("1", "2", "rollback_watch")
    run(defs, instance, request.job_name, request)
    assert registry.champion().version == "1"
    rolled = registry.record("2").rolled_back
    assert rolled.by == "rollback_watch" and "rollback watch on 2013-06-13" in rolled.reason
    assert "worse than the champion it replaced beyond the noise" in rolled.reason
    assert registry.record("1").became_champion_by == "restored"
    said = as_text(provenance("2", instance=instance, registry=registry))
    assert "rolled back by rollback_watch: rollback watch on 2013-06-13" in said
    assert tick(rollback_sensor, instance, watch_cursor)[0] == []  # nothing twice
    # the same decision again, once the champion has moved: refused, nothing moves
    again = run(defs, instance, request.job_name, request, raise_on_error=False)
    assert not again.success and registry.champion().version == "1"
    assert "v2 is not the champion any more" in str(again.get_run_failure_event().event_specific_data.error)

    # a champion restored by a rollback is not watched: the next day is scored by v1 alone
    run(defs, instance, "ingest_job", partition_key="2013-06-14")
    run(defs, instance, "monitor_job", partition_key="2013-06-14")
    assert latest(instance, "predictions", "2013-06-14")["rollback_watch"] == "none"
    assert "watch_verdict" not in latest(instance, "performance_report", "2013-06-14")

    # people are told, with the figures
    tick(verdict_alert, instance, alerts_cursor)
    texts = "\n".join(hook.texts())
    assert "Rollback: v2 -> v1" in texts and "requested by rollback_watch" in texts
    assert "worse than the champion it replaced beyond the noise" in texts
    assert any("Rollback: v2 -> v1" in m["Subject"] for m in mail.messages)
