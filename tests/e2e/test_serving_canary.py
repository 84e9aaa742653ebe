"""A canary on live traffic, end to end: the pipeline's own retrains on a real instance and
stores (SQLite or PostgreSQL), the real scoring server on loopback in front of them.

v1 is the champion; v2 passes the (overridden) gate in promotion mode canary and waits as the
challenger. The server answers the flights asked by flight whose key hashes below
FLIGHTS_CANARY_SHARE with v2 and the others with v1: every answer names its version (body and
header) and `served_as`, and one flight always gets one version. Once FLIGHTS_CANARY_DAYS days
are labelled, performance_report compares each version on the flights it answered,
`challenger_sensor` promotes or drops v2 on that verdict, the reason lands on the version, in
its provenance and in the alert, and the server follows the decision.
"""

import json
import time
import urllib.request

import pytest
from dagster import DagsterInstance

from tests.support import free_port, land_and_ingest, latest, retrain, run, start_server, stop_server, tick

pytestmark = pytest.mark.e2e
DAYS = [f"2013-06-{d:02d}" for d in range(1, 13)]
TRAIN_END = "2013-06-10"
CANARY_DAYS = ["2013-06-11", "2013-06-12"]
SHARE = 0.5


def _ask(url: str, flight: dict):
    request = urllib.request.Request(url + "/predict", data=json.dumps(flight).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read()), response.headers["X-Model-Version"]


def _served_by_flight(warehouse) -> int:
    return len(warehouse.served_by_flight(CANARY_DAYS))


def test_a_canary_answers_its_share_of_flights_and_is_decided_on_the_flights_each_version_answered(
        workdir, resources, monkeypatch, alerting, tmp_path):
    from pipelines.commands.provenance import as_text, provenance
    from pipelines.definitions import build_definitions
    from pipelines.orchestration.alerts import verdict_alert
    from pipelines.orchestration.deployment import challenger_sensor
    from pipelines.serving.by_flight import FlightKey
    from pipelines.serving.server import serve_command
    from resources.schemas import flight_features

    hook, _ = alerting
    monkeypatch.setenv("FLIGHTS_DATA_DIR", str(workdir["data"]))
    monkeypatch.setenv("FLIGHTS_CANARY_DAYS", str(len(CANARY_DAYS)))
    monkeypatch.setenv("FLIGHTS_CANARY_SHARE", str(SHARE))
    registry, warehouse = resources["model_registry"], resources["warehouse"]
    defs = build_definitions(resources)
    instance = DagsterInstance.from_config(str(workdir["home"]))
    land_and_ingest(defs, instance, workdir["landing"], DAYS, ingest_through=TRAIN_END)
    retrain(defs, instance, "auto", TRAIN_END)
    alerts_cursor = tick(verdict_alert, instance, None)[1]
    retrain(defs, instance, "canary", TRAIN_END, force_promote=True, override_reason="canary test")
    assert (registry.champion().version, registry.challenger().version) == ("1", "2")
    assert registry.challenger().challenger_mode == "canary"
    assert "answering 50% of the flights asked by flight" in latest(instance, "champion_model")["model_card"]

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd, env = serve_command(registry, "127.0.0.1", port)
    env.update({"WAREHOUSE_URL": workdir["warehouse_url"], "MLFLOW_ARTIFACT_ROOT": str(workdir["data"] / "mlartifacts"),
                "FLIGHTS_CANARY_SHARE": str(SHARE), "FLIGHTS_SERVE_POLL_SECONDS": "0.5",
                "FLIGHTS_SERVE_RECORD_SECONDS": "0.2"})
    proc, log = start_server(cmd, env, tmp_path / "serve.log", url + "/ping")
    try:
        run(defs, instance, "ingest_job", tags={"dagster/asset_partition_range_start": CANARY_DAYS[0],
                                                "dagster/asset_partition_range_end": CANARY_DAYS[-1]})
        flights = warehouse.read(flight_features, CANARY_DAYS)
        by_version = {"1": 0, "2": 0}
        for row in flights.itertuples(index=False):
            flight = {"carrier": row.carrier, "flight": int(row.flight), "origin": row.origin, "dest": row.dest,
                      "scheduled_departure": row.sched_dep_ts[:16]}
            answer, header = _ask(url, flight)
            key = FlightKey(row.sched_dep_ts[:10], row.carrier, int(row.flight), row.origin, row.dest,
                            int(row.sched_dep_ts[11:13]) * 100 + int(row.sched_dep_ts[14:16]))
            expected = "2" if key.canary_bucket < SHARE else "1"  # by the flight's key, nothing else
            assert answer["model_version"] == header == expected
            assert answer["served_as"] == ("canary" if expected == "2" else "champion")
            by_version[expected] += 1
        again, _ = _ask(url, flight)  # the same flight again: the same version
        assert again["model_version"] == answer["model_version"]
        assert 0.4 < by_version["2"] / len(flights) < 0.6, by_version
        deadline = time.time() + 60  # recorded off the request path
        while _served_by_flight(warehouse) < len(flights) + 1 and time.time() < deadline:
            time.sleep(0.3)
        recorded = warehouse.served_by_flight(CANARY_DAYS)
        assert len(recorded) == len(flights) + 1
        assert recorded["model_version"].value_counts().to_dict() == {"1": by_version["1"] + (expected == "1"),
                                                                      "2": by_version["2"] + (expected == "2")}

        for day in CANARY_DAYS:
            run(defs, instance, "monitor_job", partition_key=day)
        first, last = (latest(instance, "performance_report", d) for d in CANARY_DAYS)
        assert isinstance(last["served_roc_auc"], float) and last["served_flights_matched"] >= 0.95 * len(flights)
        assert first["canary_verdict"] == "waiting" and first["canary_days"] == 1
        assert last["canary_challenger"] == "2" and last["canary_days"] == len(CANARY_DAYS)
        assert last["canary_answers"] + last["canary_champion_answers"] >= 0.95 * len(flights)  # cancelled: no arrival
        print(f"canary verdict: {last['canary_verdict']}: {last['canary_reason']}")
        ahead = last["canary_roc_auc"] - last["canary_champion_roc_auc"]
        assert last["canary_verdict"] == ("promote" if ahead >= 0.002 else "drop"), last["canary_reason"]

        (request,), _, _ = tick(challenger_sensor, instance, None)
        run(defs, instance, request.job_name, request)
        promoted = last["canary_verdict"] == "promote"
        assert registry.champion().version == ("2" if promoted else "1") and registry.challenger() is None
        event = registry.record("2").events[-1]
        assert (event.kind, event.by) == ("approved" if promoted else "dropped", "canary_verdict")
        assert f"canary verdict on {CANARY_DAYS[-1]}" in event.reason and "flights it answered" in event.reason
        assert f"canary verdict on {CANARY_DAYS[-1]}" in as_text(provenance("2", instance=instance, registry=registry))

        # the server follows the decision: no canary any more, every flight by the champion
        deadline = time.time() + 60
        while time.time() < deadline:
            answer, header = _ask(url, flight)
            if answer["served_as"] == "champion" and header == registry.champion().version:
                break
            time.sleep(0.3)
        assert (answer["served_as"], header) == ("champion", registry.champion().version)
    finally:
        stop_server(proc, log)

    tick(verdict_alert, instance, alerts_cursor)
    texts = "\n".join(hook.texts())
    assert "Challenger v2 waiting (canary)" in texts and "answering 50% of the flights asked by flight" in texts
    said = "Challenger v2 approved by canary_verdict" if promoted else "Challenger v2 dropped by canary_verdict"
    assert said in texts and f"canary verdict on {CANARY_DAYS[-1]}" in texts
