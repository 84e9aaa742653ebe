"""Training and evaluation functions: time split, training-set guards, the gate, determinism."""

import numpy as np
import pytest

from assets.evaluation.logic import Evaluation, GatePolicy, Metrics, baseline_scores, calibration_table, decide, metrics
from assets.training.logic import LABEL, ModelParams, choose_threshold, fit, split_days, window_days
from resources.errors import DataProblem
from served_model.features import model_input
from tests.support import feature_days, training_set_of

DAYS = [f"2013-05-{d:02d}" for d in range(1, 13)]


@pytest.fixture(scope="module")
def features():
    return feature_days(DAYS)


def test_split_is_by_time_and_disjoint():
    days = window_days("2013-03-01", 60)
    assert len(days) == 60 and days[0] == "2013-01-01" and days[-1] == "2013-03-01"
    s = split_days(days)
    assert [len(s["train"]), len(s["validation"]), len(s["test"])] == [42, 6, 12]
    assert not set(s["train"]) & set(s["validation"]) and not set(s["validation"]) & set(s["test"])
    assert max(s["train"]) < min(s["validation"]) and max(s["validation"]) < min(s["test"])
    assert sorted(s["train"] + s["validation"] + s["test"]) == days
    with pytest.raises(DataProblem):
        split_days(days[:2])


def test_window_starts_at_the_first_day_when_the_window_is_longer_than_the_data():
    assert window_days("2013-01-05", 60) == [f"2013-01-0{d}" for d in range(1, 6)]


def test_training_set_rejects_too_few_rows_a_single_class_and_missing_days(features):
    ts = training_set_of(features, DAYS)
    assert set(ts.frame["split"]) == {"train", "validation", "test"}
    assert ts.frame[LABEL].notna().all()  # cancelled flights have no label and are left out
    assert len(ts.frame) == features[LABEL].notna().sum()
    with pytest.raises(DataProblem, match="labelled rows"):
        training_set_of(features, DAYS, min_rows=10**7)
    one_class = features.assign(is_late=0)
    with pytest.raises(DataProblem, match="single class"):
        training_set_of(one_class, DAYS)
    with pytest.raises(DataProblem, match="no features for 1 day"):
        training_set_of(features[features["partition_date"] != DAYS[3]], DAYS)


def test_same_inputs_give_the_same_model(features):
    ts = training_set_of(features, DAYS)
    test = model_input(ts.split("test"))
    p1 = fit(ts, ModelParams()).predict_proba(test)[:, 1]
    p2 = fit(ts, ModelParams()).predict_proba(test)[:, 1]
    np.testing.assert_array_equal(p1, p2)
    p3 = fit(ts, ModelParams(random_state=0, max_iter=20)).predict_proba(test)[:, 1]
    assert not np.array_equal(p1, p3)  # the hyperparameters do reach the model


def test_model_beats_the_baseline_on_later_days(features):
    ts = training_set_of(features, DAYS)
    test, train = ts.split("test"), ts.split("train")
    p = fit(ts, ModelParams()).predict_proba(model_input(test))[:, 1]
    y = test[LABEL].to_numpy()
    m, b = metrics(y, p, 0.3), metrics(y, baseline_scores(train, test), 0.3)
    assert 0.5 < b.roc_auc < m.roc_auc


def test_threshold_and_calibration():
    y = np.array([0, 0, 1, 1, 0, 1])
    p = np.array([0.1, 0.2, 0.8, 0.7, 0.4, 0.35])
    assert choose_threshold(y, p) == pytest.approx(0.35)
    rows = calibration_table(y, p, bins=5)
    assert sum(r["rows"] for r in rows) == len(y)


def _m(auc):
    return Metrics(roc_auc=auc, pr_auc=0.5, log_loss=0.6, brier=0.2, precision=0.5, recall=0.5, f1=0.5,
                   threshold=0.3, rows=100, late_share=0.2)


@pytest.mark.parametrize(
    "candidate, champion, baseline, gate, promote, phrase",
    [
        (0.70, None, 0.60, GatePolicy(), True, "first deployment"),
        (0.60, None, 0.55, GatePolicy(min_roc_auc=0.65), False, "below the floor"),
        (0.70, None, 0.72, GatePolicy(), False, "does not beat the baseline"),
        (0.70, 0.699, 0.60, GatePolicy(min_margin=0.002), False, "required margin"),
        (0.70, 0.69, 0.60, GatePolicy(min_margin=0.002), True, "beats the champion"),
        (0.60, 0.69, 0.60, GatePolicy(force_promote=True, override_reason="incident 42"), True, "MANUAL OVERRIDE"),
    ],
    ids=["first-run", "floor", "baseline", "margin-missed", "margin-met", "override"],
)
def test_gate_decisions(candidate, champion, baseline, gate, promote, phrase):
    d = decide(_m(candidate), None if champion is None else _m(champion), _m(baseline), gate)
    assert d.promote is promote
    assert any(phrase in r for r in d.reasons), d.reasons


def test_override_needs_a_reason():
    with pytest.raises(ValueError, match="override_reason"):
        decide(_m(0.6), _m(0.7), _m(0.5), GatePolicy(force_promote=True))


def test_the_evaluation_survives_its_json_record():
    """What model_evaluation stores on the MLflow run is what champion_model reads back."""
    evaluation = Evaluation(candidate_version="3", champion_version=None, test_days=["2013-05-12"],
                            metrics={"candidate": _m(0.71), "baseline": _m(0.64)},
                            verdict=decide(_m(0.71), None, _m(0.64), GatePolicy()),
                            calibration=[{"bin": "0.0-0.1", "rows": 3, "mean_predicted": 0.05, "observed_late": 0.0}])
    import json

    again = Evaluation.from_json(json.loads(json.dumps(evaluation.as_json())))
    assert again == evaluation and again.verdict.promote and again.candidate.roc_auc == 0.71
    assert again.mlflow_metrics()["test_candidate_roc_auc"] == 0.71
