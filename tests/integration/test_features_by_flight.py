"""Online/offline parity of asking by flight: five real days ingested by the pipeline (landing
files, ingest_job), then every flight of those days asked as a caller names it (carrier, flight,
origin, dest, scheduled departure only). The features the server's FlightDesk computes equal the
day's `flight_features` row exactly, column by column, and the probability equals batch
scoring's (`assets/scoring/logic.score`) of that row by the same model. A day with a new version
is reloaded; a flight the schedule does not know and a day the warehouse lacks are answered from
what is known and say so; a request naming no flight is refused naming the field."""

import math

import numpy as np
import pandas as pd
import pytest
from dagster import DagsterInstance

from tests.support import land_and_ingest, training_set_of, write_landing

DAYS = [f"2013-07-{d:02d}" for d in range(8, 13)]


def _request(row) -> dict:
    return {"carrier": row.carrier, "flight": int(row.flight), "origin": row.origin, "dest": row.dest,
            "scheduled_departure": row.sched_dep_ts[:16]}


def _same(a, b) -> bool:
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None or (isinstance(b, float) and math.isnan(b))
    return a == b


def _served_at(p: float):
    """A served version whose model answers `p` for every flight (the tests of what the features know)."""
    class Scorer:
        @staticmethod
        def predict_proba(rows):
            return np.array([[1 - p, p] for _ in rows])

    return type("Served", (), {"version": "1", "scorer": Scorer})


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    from pipelines.definitions import build_definitions
    from resources.data_quality import GreatExpectations
    from resources.registry import ModelRegistry
    from resources.source import FlightSource
    from resources.warehouse import Warehouse
    from tests.support import make_dagster_home, store_url

    tmp = tmp_path_factory.mktemp("by_flight")
    landing = tmp / "data" / "landing"
    landing.mkdir(parents=True)
    mp = pytest.MonkeyPatch()
    mp.setenv("FLIGHTS_DATA_DIR", str(tmp / "data"))
    warehouse = Warehouse(url=store_url(tmp / "data", "warehouse"))
    resources = {"source": FlightSource(mode="landing", landing_dir=str(landing)), "warehouse": warehouse,
                 "great_expectations": GreatExpectations(),
                 "model_registry": ModelRegistry(tracking_uri=store_url(tmp / "data", "mlflow"),
                                                 artifact_root=str(tmp / "data" / "mlartifacts"))}
    defs = build_definitions(resources)
    instance = DagsterInstance.from_config(str(make_dagster_home(tmp / "dagster_home")))
    land_and_ingest(defs, instance, landing, DAYS)
    yield {"warehouse": warehouse, "defs": defs, "instance": instance, "landing": landing}
    mp.undo()


def test_every_flight_of_five_days_gets_its_flight_features_row_and_batch_probability(ingested):
    from assets.scoring.logic import score
    from pipelines.serving.by_flight import DayContexts, FlightDesk
    from resources.schemas import flight_features
    from served_model.features import FEATURE_COLUMNS
    from served_model.model import FastScorer

    warehouse = ingested["warehouse"]
    stored = warehouse.read(flight_features, DAYS)
    assert stored["partition_date"].nunique() == 5 and len(stored) > 4000
    fitted = training_set_of(stored, DAYS, min_rows=100)
    from assets.training.logic import ModelParams, fit_candidate

    model = fit_candidate(fitted, ModelParams(max_iter=20)).model
    batch = score(stored, model, 0.5, "m", "1")["probability_late"].to_numpy()

    class Served:  # the served version as the server holds it: its version and its own scorer
        version, scorer = "1", FastScorer(model)

    desk = FlightDesk(DayContexts(warehouse, poll_seconds=3600))
    differing, probabilities = [], []
    for row in stored.itertuples(index=False):
        answer = desk.answer(_request(row), Served)
        assert answer["in_schedule"] is True and answer["features_as_of"] == row.sched_dep_ts
        differing += [(row.partition_date, row.row_number, c) for c in FEATURE_COLUMNS
                      if not _same(answer["features"][c], getattr(row, c))]
        probabilities.append(answer["probability_late"])
    assert differing == []  # every feature of every flight equals its flight_features row
    np.testing.assert_allclose(probabilities, batch, rtol=0, atol=1e-12)
    print(f"\nparity: {len(stored)} flights of {len(DAYS)} days, {len(FEATURE_COLUMNS)} features each: 0 differ; "
          f"largest probability difference {np.max(np.abs(np.array(probabilities) - batch)):.2e}")
    assert desk.contexts.loads == len(DAYS)  # one load per day version, none per request


def test_a_new_version_of_a_day_is_loaded_and_used(ingested):
    from pipelines.serving.by_flight import DayContexts, FlightDesk
    from resources.schemas import flight_features
    from tests.support import replay_day

    day, warehouse = DAYS[0], ingested["warehouse"]
    desk = FlightDesk(DayContexts(warehouse, poll_seconds=3600))
    first = warehouse.read(flight_features, [day]).sort_values("sched_dep_ts").iloc[-1]

    Served = _served_at(0.5)
    before = desk.answer(_request(first), Served)
    # the day received again, its morning flights all 60 minutes later: the evening flight's congestion changes
    flights = replay_day("flights", day)
    morning = pd.to_numeric(flights["sched_dep_time"]) < 1200
    flights.loc[morning, "dep_delay"] = (pd.to_numeric(flights.loc[morning, "dep_delay"]) + 60).astype(str)
    write_landing(ingested["landing"], "flights", day, flights)
    ingested["defs"].resolve_job_def("ingest_job").execute_in_process(
        instance=ingested["instance"], partition_key=day)
    desk.contexts.check_once()
    after = desk.answer(_request(first), Served)
    assert after["day_data_version"]["validated_flights"] != before["day_data_version"]["validated_flights"]
    assert after["features"]["origin_mean_dep_delay_today"] > before["features"]["origin_mean_dep_delay_today"]
    now = warehouse.read(flight_features, [day]).set_index(["carrier", "flight", "origin"]).loc[
        (first.carrier, first.flight, first.origin)]
    assert after["features"]["origin_mean_dep_delay_today"] == now["origin_mean_dep_delay_today"]


def test_unknown_flights_and_days_are_answered_from_what_is_known_and_bad_requests_name_the_field(ingested):
    from pipelines.serving.by_flight import BadFlight, DayContexts, FlightDesk

    desk = FlightDesk(DayContexts(ingested["warehouse"], poll_seconds=3600))

    Served = _served_at(0.6)
    flight = {"carrier": "UA", "flight": 9998, "origin": "EWR", "dest": "ORD", "scheduled_departure": f"{DAYS[1]}T18:30"}
    unscheduled = desk.answer(flight, Served)
    assert unscheduled["in_schedule"] is False and unscheduled["features_as_of"] == f"{DAYS[1]}T18:30:00"
    assert unscheduled["features"]["origin_departures_prev_2h"] > 0  # the day's other flights are known
    assert unscheduled["features"]["distance"] == 719.0  # the route's distance, from the day's schedule
    unknown_day = desk.answer({**flight, "scheduled_departure": "2013-12-30T18:30"}, Served)
    assert unknown_day["in_schedule"] is False and unknown_day["features_as_of"] is None
    assert unknown_day["day_data_version"] is None and unknown_day["features"]["origin_departures_prev_2h"] == 0
    assert unknown_day["features"]["temp"] is None and unknown_day["features"]["day_of_year"] == 364

    bad = {"carrier": ("XX", "carrier"), "origin": ("BOS", "origin"), "dest": ("Q\x00Q", "dest"),
           "flight": ("12", "flight"), "scheduled_departure": ("2013-02-30T10:00", "scheduled_departure"),
           "distance": (float("nan"), "distance"), "tailnum": ("n 1", "tailnum"), "gate": ("A1", "gate")}
    for name, (value, field) in bad.items():
        with pytest.raises(BadFlight) as refused:
            desk.answer({**flight, name: value}, Served)
        assert refused.value.field == field and "\x00" not in str(refused.value)
    for when in ("2014-01-01T10:00", "2013-07-08T24:00", "2013-07-08", "10:00"):
        with pytest.raises(BadFlight, match="scheduled_departure"):
            desk.answer({**flight, "scheduled_departure": when}, Served)
    with pytest.raises(BadFlight, match="body"):
        desk.answer([flight], Served)
