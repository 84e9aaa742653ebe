"""What was served by flight, judged (assets/monitoring/served.py): each answer matched to its
flight's arrival by the flight's key; answers for flights without a known arrival, or for flights
the schedule does not have, are counted but not judged; fewer than MIN_SERVED_ROWS matched: no
verdict, said so; the ROC AUC is that of the answers, held to the floor given."""

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from assets.monitoring.logic import MIN_SERVED_ROWS
from assets.monitoring.served import served_performance


def _flights(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    late = rng.integers(0, 2, n).astype(float)
    late[:5] = np.nan  # cancelled: no arrival
    return pd.DataFrame({"carrier": "UA", "flight": np.arange(1, n + 1), "origin": "EWR",
                         "sched_dep_ts": [f"2013-06-11T{6 + i % 12:02d}:{i % 60:02d}:00" for i in range(n)],
                         "is_late": late})


def _answers(flights: pd.DataFrame, p: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"carrier": flights["carrier"], "flight": flights["flight"], "origin": flights["origin"],
                         "scheduled_departure": flights["sched_dep_ts"], "probability_late": p})


def test_answers_are_matched_by_flight_key_and_judged_by_their_own_roc_auc():
    flights = _flights(200)
    p = np.where(flights["is_late"] == 1, 0.7, 0.3) + np.random.default_rng(1).normal(0, 0.25, len(flights))
    answers = _answers(flights, p)
    stranger = answers.head(3).assign(flight=9000)  # the schedule has no such flight
    asked_twice = answers.iloc[[10]]
    judged = served_performance(pd.concat([answers, stranger, asked_twice]), flights, floor=0.6, label="is_late")
    known = flights["is_late"].notna().to_numpy()
    both = np.concatenate([known, [False] * 3, [known[10]]])
    truth = pd.concat([flights["is_late"], pd.Series([np.nan] * 3), flights["is_late"].iloc[[10]]]).to_numpy()[both]
    expected = roc_auc_score(truth.astype(int), np.concatenate([p, p[:3], p[[10]]])[both])
    assert (judged.answers, judged.flights, judged.matched) == (204, 203, int(both.sum()))
    assert judged.roc_auc == expected and judged.judged and judged.passed == (expected > 0.6)
    assert "served ROC AUC" in judged.said


def test_a_floor_above_the_served_roc_auc_is_degraded_and_too_few_flights_are_not_judged():
    flights = _flights(200)
    answers = _answers(flights, np.random.default_rng(2).random(len(flights)))  # no skill: ROC AUC ~0.5
    assert served_performance(answers, flights, floor=0.7, label="is_late").passed is False
    few = served_performance(answers.head(MIN_SERVED_ROWS + 4), flights, floor=0.7, label="is_late")  # 5 cancelled
    assert few.matched == MIN_SERVED_ROWS - 1 and not few.judged and few.passed and "not judged" in few.said
    nothing = served_performance(answers.head(0), flights, floor=0.7, label="is_late")
    assert (nothing.answers, nothing.matched) == (0, 0) and nothing.passed and np.isnan(nothing.roc_auc)
