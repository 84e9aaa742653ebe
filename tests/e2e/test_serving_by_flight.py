"""Asking the real scoring server by flight (`POST /predict`), on loopback, with the profile's
stores (SQLite or PostgreSQL): two real days ingested by the pipeline, a registered champion, the
server (two workers, recording) in front of them. A flight named as a caller knows it (carrier,
flight, origin, dest, scheduled departure) is answered with the probability batch scoring gives
its flight_features row, the version, the features' as-of and the day's data version; the answer
is recorded with the flight's key; a bad field is a 400 naming it, never a 500 or a trace; a
fuzz of requests by flight is answered 200 or 400 and every 200 is recorded."""

import json
import os
import urllib.error
import urllib.request

import numpy as np
import pytest
from dagster import DagsterInstance
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from tests.support import free_port, land_and_ingest, start_server, stop_server, store_url, training_set_of

pytestmark = pytest.mark.e2e
DAYS = ["2013-09-03", "2013-09-04", "2013-09-05"]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from assets.training.build import pip_requirements, training_dataset
    from assets.training.logic import ModelParams, fit_candidate
    from pipelines.definitions import build_definitions
    from pipelines.serving.server import serve_command
    from resources.data_quality import GreatExpectations
    from resources.records import BuildInfo, RetrainTrigger
    from resources.registry import ModelRegistry
    from resources.schemas import flight_features
    from resources.source import FlightSource
    from resources.warehouse import Warehouse
    from served_model.features import model_input
    from tests.support import make_dagster_home

    tmp = tmp_path_factory.mktemp("by_flight_server")
    landing = tmp / "landing"
    landing.mkdir()
    warehouse_url = store_url(tmp, "warehouse")  # SQLite, or a fresh PostgreSQL database (make test-postgres)
    warehouse = Warehouse(url=warehouse_url)
    registry = ModelRegistry(tracking_uri=store_url(tmp, "mlflow"), artifact_root=str(tmp / "artifacts"))
    defs = build_definitions({"source": FlightSource(mode="landing", landing_dir=str(landing)), "warehouse": warehouse,
                              "great_expectations": GreatExpectations(), "model_registry": registry})
    land_and_ingest(defs, DagsterInstance.from_config(str(make_dagster_home(tmp / "home"))), landing, DAYS)
    stored = warehouse.read(flight_features, DAYS)
    ts = training_set_of(stored, DAYS, min_rows=100)
    fitted = fit_candidate(ts, ModelParams(max_iter=10))
    run = registry.start_training_run(ts.window, RetrainTrigger(), BuildInfo("run", "retrain_job", "c", "l", "1"), run_name="v1")
    registry.register_candidate(fitted.model, run_id=run, params={}, metrics={}, threshold=fitted.threshold,
                                sample=model_input(stored.head(20)),
                                dataset=training_dataset(ts.window, "sqlite:///w.db#flight_features"),
                                pip_requirements=pip_requirements())
    registry.promote("1", by="test", reason="start")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd, env = serve_command(registry, "127.0.0.1", port)
    env.update({"WAREHOUSE_URL": warehouse_url, "FLIGHTS_SERVE_RECORD_SECONDS": "0.2",
                "MLFLOW_ARTIFACT_ROOT": str(tmp / "artifacts")})
    proc, log = start_server(cmd, env, tmp / "serve.log", url + "/ping")
    try:
        yield {"url": url, "stored": stored, "model": fitted.model, "warehouse": warehouse.engine}
    finally:
        stop_server(proc, log)
        os.environ.pop("MLFLOW_TRACKING_URI", None)


def _ask(url: str, body: bytes, content_type: str = "application/json"):
    request = urllib.request.Request(url + "/predict", data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read()), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), exc.headers


def _flight(row) -> dict:
    return {"carrier": row.carrier, "flight": int(row.flight), "origin": row.origin, "dest": row.dest,
            "scheduled_departure": row.sched_dep_ts[:16]}


def _recorded(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM served_predictions WHERE flight IS NOT NULL")).scalar()


def test_a_flight_asked_by_what_a_caller_knows_gets_its_batch_probability(served):
    from assets.scoring.logic import score

    stored = served["stored"]
    sample = stored.sample(40, random_state=3)
    batch = score(sample, served["model"], 0.5, "m", "1")["probability_late"].to_numpy()
    before = _recorded(served["warehouse"])
    answers = []
    for row in sample.itertuples(index=False):
        status, answer, headers = _ask(served["url"], json.dumps(_flight(row)).encode())
        assert status == 200, answer
        assert headers["X-Model-Version"] == answer["model_version"] == "1"
        assert answer["in_schedule"] is True and answer["features_as_of"] == row.sched_dep_ts
        assert set(answer["day_data_version"]) == {"validated_flights", "validated_weather"}
        answers.append(answer["probability_late"])
    np.testing.assert_allclose(answers, batch, rtol=0, atol=1e-12)
    # recorded with the flight's key, off the request path
    import time

    deadline = time.time() + 30
    while _recorded(served["warehouse"]) - before < len(sample) and time.time() < deadline:
        time.sleep(0.2)
    with served["warehouse"].connect() as conn:
        rows = conn.execute(text("SELECT carrier, flight, origin, dest, scheduled_departure, in_schedule, probability_late "
                                 "FROM served_predictions WHERE flight IS NOT NULL")).all()
    assert len(rows) - before == len(sample)
    first = sample.iloc[0]
    assert any(r[0] == first.carrier and r[1] == first.flight and r[2] == first.origin and r[4] == first.sched_dep_ts
               and bool(r[5]) for r in rows)


@pytest.mark.parametrize("change, field", [
    ({"carrier": "ZZ"}, "carrier"), ({"origin": "SFO"}, "origin"), ({"dest": "NOPE"}, "dest"),
    ({"scheduled_departure": "2013-09-31T10:00"}, "scheduled_departure"),
    ({"scheduled_departure": "2012-12-31T10:00"}, "scheduled_departure"), ({"flight": "UA1"}, "flight"),
    ({"dest": "O\u0000RD"}, "dest"), ({"distance": 1e400}, "distance")])
def test_a_bad_field_is_a_400_naming_it(served, change, field):
    flight = {**_flight(next(served["stored"].itertuples(index=False))), **change}
    status, answer, _ = _ask(served["url"], json.dumps(flight).encode())
    assert status == 400 and answer["message"].startswith(f"{field}:"), answer
    assert "Traceback" not in answer["message"] and "\x00" not in answer["message"]


def test_not_json_and_not_a_flight_are_refused_clearly(served):
    assert _ask(served["url"], b"carrier=UA", "application/x-www-form-urlencoded")[0] == 415
    assert _ask(served["url"], b"{not json")[0] == 400
    status, answer, _ = _ask(served["url"], b"[]")
    assert status == 400 and answer["message"].startswith("body:")


def test_a_fuzz_of_flights_is_answered_and_every_answer_recorded(served):
    import time

    base = [_flight(r) for r in served["stored"].head(30).itertuples(index=False)]
    values = st.one_of(st.none(), st.integers(-5, 20000), st.floats(allow_nan=True, allow_infinity=True),
                       st.text(max_size=6), st.sampled_from(["UA", "EWR", "JFK", "ORD", "2013-09-03T07:00", "\x00"]))
    before, answered, refused = _recorded(served["warehouse"]), [], []

    @settings(max_examples=80, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(flight=st.sampled_from(base), name=st.sampled_from(sorted(base[0]) + ["tailnum", "distance", "x"]),
           value=values, drop=st.booleans())
    def one(flight, name, value, drop):
        flight = dict(flight)
        if drop:
            flight.pop(name, None)
        else:
            flight[name] = value
        status, answer, _ = _ask(served["url"], json.dumps(flight).encode())
        assert status in (200, 400), (status, answer)
        (answered if status == 200 else refused).append(flight)
        if status == 400:
            assert answer["message"] and "Traceback" not in answer["message"]

    one()
    deadline = time.time() + 30
    while _recorded(served["warehouse"]) - before < len(answered) and time.time() < deadline:
        time.sleep(0.2)
    print(f"\nfuzz by flight: {len(answered)} answered 200, {len(refused)} refused 400, "
          f"{_recorded(served['warehouse']) - before} recorded")
    assert answered and refused and _recorded(served["warehouse"]) - before == len(answered)
