"""The decisions on live evidence, on hand-made scores: the rollback watch's margin (a paired
bootstrap of the ROC AUC difference, never below the gate's margin) and the canary comparison."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from assets.monitoring.rollback import _roc_auc_rows, paired_bootstrap, rollback_watch
from assets.monitoring.served import canary_comparison

GATE = 0.002


def _scored(n: int, seed: int, days: int = 3):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(int)
    signal = rng.normal(size=n) + 1.2 * y
    frame = pd.DataFrame({"partition_date": [f"2013-06-{11 + i % days:02d}" for i in range(n)], "row_number": range(n),
                          "is_late": y})
    return frame, signal, rng


def _watch(frame, new, old, needed=3, resamples=400):
    labelled = frame.assign(probability_late=new)
    shadow = frame[["partition_date", "row_number"]].assign(probability_late=old, model_version="1")
    return rollback_watch(labelled, shadow, "2", "1", needed, GATE, "is_late", resamples=resamples)


def test_the_rank_roc_auc_equals_scikit_learns_with_ties():
    frame, signal, _ = _scored(3000, 1)
    rounded = np.round(signal, 1)  # many ties
    assert _roc_auc_rows(frame["is_late"].to_numpy()[None], rounded[None])[0] == pytest.approx(
        roc_auc_score(frame["is_late"], rounded), abs=1e-12)


def test_a_clearly_worse_champion_is_rolled_back_and_the_reason_gives_the_figures():
    frame, signal, rng = _scored(3000, 2)
    old = signal + rng.normal(size=len(signal)) * 0.3
    new = signal + rng.normal(size=len(signal)) * 2.0  # much noisier: worse
    w = _watch(frame, new, old)
    assert w.verdict == "rollback" and w.difference < -w.margin and w.margin >= GATE
    assert "worse than the champion it replaced beyond the noise" in w.reason and "3000 flights" in w.reason


def test_a_difference_noise_can_explain_is_kept():
    """On few flights a point difference several times the gate's margin is still within the noise."""
    frame, signal, rng = _scored(300, 3)
    old = signal + rng.normal(size=len(signal)) * 0.5
    new = old + rng.normal(size=len(signal)) * 0.35
    w = _watch(frame, new, old)
    assert w.difference < -3 * GATE  # behind, as a fixed margin would see it
    assert w.noise > -w.difference and w.verdict == "keep"
    assert "not worse than the champion it replaced beyond the noise" in w.reason


def test_equal_models_are_kept_and_the_gate_margin_is_the_floor():
    frame, signal, _ = _scored(2000, 4)
    w = _watch(frame, signal, signal.copy())
    assert w.difference == 0 and w.noise == 0 and w.margin == GATE and w.verdict == "keep"


def test_before_the_watch_days_are_in_the_watch_waits_and_draws_no_bootstrap():
    frame, signal, _ = _scored(2000, 5, days=2)
    w = _watch(frame, signal * 0, signal)
    assert w.verdict == "waiting" and np.isnan(w.noise) and "watching for 3 labelled days" in w.reason


def test_the_bootstrap_pairs_the_flights_and_is_seeded():
    frame, signal, rng = _scored(1000, 6)
    y, old = frame["is_late"].to_numpy(), signal + rng.normal(size=1000)
    first, second = paired_bootstrap(y, signal, old, 200), paired_bootstrap(y, signal, old, 200)
    assert np.array_equal(first, second) and len(first) == 200
    assert np.all(paired_bootstrap(y, signal, signal, 50) == 0)  # same scores, same flights: no difference


def _answers(n: int, seed: int, champion_noise: float, canary_noise: float):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(int)
    signal = rng.normal(size=n) + 1.2 * y
    version = np.where(rng.random(n) < 0.5, "2", "1")
    p = np.where(version == "2", signal + rng.normal(size=n) * canary_noise, signal + rng.normal(size=n) * champion_noise)
    day = [f"2013-06-{11 + i % 2:02d}" for i in range(n)]
    served = pd.DataFrame({"carrier": "UA", "flight": range(n), "origin": "EWR",
                           "scheduled_departure": [f"{d}T08:00:00" for d in day], "probability_late": p,
                           "model_version": version})
    outcomes = pd.DataFrame({"carrier": "UA", "flight": range(n), "origin": "EWR",
                             "sched_dep_ts": served["scheduled_departure"], "is_late": y, "partition_date": day})
    return served, outcomes


@pytest.mark.parametrize(("champion_noise", "canary_noise", "verdict"), [(2.0, 0.3, "promote"), (0.3, 2.0, "drop")])
def test_the_canary_is_judged_on_the_flights_each_version_answered(champion_noise, canary_noise, verdict):
    served, outcomes = _answers(2000, 7, champion_noise, canary_noise)
    c = canary_comparison(served, outcomes, "1", "2", days=2, needed=2, margin=GATE, label="is_late")
    assert c.canary_answers + c.champion_answers == 2000 and min(c.canary_answers, c.champion_answers) > 900
    assert c.verdict == verdict and f"on the {c.canary_answers} flights it answered" in c.reason


def test_the_canary_waits_for_its_days_and_for_enough_answers_on_each_side():
    served, outcomes = _answers(2000, 8, 2.0, 0.3)
    assert canary_comparison(served, outcomes, "1", "2", days=1, needed=2, margin=GATE, label="is_late").verdict == "waiting"
    few = served[(served["model_version"] == "1") | (served.index < 60)]  # about 30 canary answers
    waiting = canary_comparison(few, outcomes, "1", "2", days=2, needed=2, margin=GATE, label="is_late")
    assert waiting.verdict == "waiting" and "fewer than 50 answers" in waiting.reason
