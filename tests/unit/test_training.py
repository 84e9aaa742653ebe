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


def test_a_long_window_validates_and_tests_on_at_most_14_days_each():
    days = window_days("2013-12-31", 365)
    s = split_days(days)
    assert [len(s["train"]), len(s["validation"]), len(s["test"])] == [337, 14, 14]
    assert s["test"][-1] == "2013-12-31" and s["train"][0] == "2013-01-01"


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
                   threshold=0.3, rows=100, late_share=0.2, calibration_error=0.04)


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


def _segment(name, candidate, champion, rows=2000):
    return {"segment": name, "rows": rows, "candidate_roc_auc": candidate, "champion_roc_auc": champion,
            "difference": round(candidate - champion, 4)}


def test_the_gate_rejects_a_candidate_worse_on_one_segment_and_names_it():
    better_overall = (_m(0.72), _m(0.70), _m(0.60))
    fine = [_segment("origin EWR", 0.72, 0.70), _segment("origin JFK", 0.70, 0.71), _segment("carrier UA", 0.73, 0.70)]
    d = decide(*better_overall, GatePolicy(segment_margin=0.02), fine)
    assert d.promote and any("no segment worse" in r and "3 guarded" in r for r in d.reasons), d.reasons
    worse = [*fine, _segment("carrier B6", 0.66, 0.70, rows=1500)]
    d = decide(*better_overall, GatePolicy(segment_margin=0.02), worse)
    assert not d.promote
    assert any(r.startswith("segment carrier B6: candidate ROC AUC 0.6600 is 0.0400 below the champion's 0.7000 on its "
                            "1500 test flights") for r in d.reasons), d.reasons
    # a wider margin lets it through; an override still overrides
    assert decide(*better_overall, GatePolicy(segment_margin=0.05), worse).promote
    assert decide(*better_overall, GatePolicy(force_promote=True, override_reason="known B6 outage"), worse).promote


def test_segment_comparison_guards_every_origin_and_only_large_carriers(features):
    from assets.evaluation.logic import segment_comparison

    test = training_set_of(features, DAYS).split("test")
    rng = np.random.default_rng(0)
    p1, p2 = rng.random(len(test)), rng.random(len(test))
    rows = segment_comparison(test, p1, p2, min_rows=300)
    carriers = test["carrier"].value_counts()
    assert {r["segment"] for r in rows if r["segment"].startswith("origin")} == {f"origin {o}" for o in test["origin"].unique()}
    assert {r["segment"] for r in rows if r["segment"].startswith("carrier")} == {f"carrier {c}" for c in carriers[carriers >= 300].index}
    assert all(abs(r["difference"] - (r["candidate_roc_auc"] - r["champion_roc_auc"])) <= 2e-4 for r in rows)


def test_the_search_tries_each_window_then_tunes_and_keeps_the_best_on_validation(features):
    from assets.training.logic import SearchPolicy, search

    ts = training_set_of(features, DAYS)
    n = len(ts.window.splits["train"])  # 12 days: 9 train
    model, trials = search(ts, ModelParams(max_iter=30), SearchPolicy(train_window_options=(3, n, 0), tuning_trials=4))
    # 3 days, then all n (n and 0 are the same window), then 2 tuning trials on the better window
    assert [(t.kind, t.train_days) for t in trials[:2]] == [("window", 3), ("window", n)]
    best_window = max(trials[:2], key=lambda t: t.validation_roc_auc)
    assert [t.kind for t in trials[2:]] == ["tuning", "tuning"]
    assert all(t.train_days == best_window.train_days for t in trials[2:])
    assert len({t.params for t in trials[1:]}) == 3  # the tuning draws other hyperparameters
    best = max(trials, key=lambda t: t.validation_roc_auc)
    val = ts.split("validation")
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(val[LABEL], model.predict_proba(model_input(val))[:, 1]) == pytest.approx(best.validation_roc_auc)
    # the time limit stops the tuning (the windows are always tried)
    ticks = iter(range(0, 10**6, 100))
    _, timed = search(ts, ModelParams(max_iter=30), SearchPolicy(train_window_options=(3, 0), tuning_trials=10,
                                                                  tuning_seconds=150), clock=lambda: next(ticks))
    assert [t.kind for t in timed] == ["window", "window"]


def test_rebuild_gives_the_searched_and_calibrated_model_again(features):
    from assets.training.logic import SearchPolicy, fit_candidate, rebuild

    ts = training_set_of(features, DAYS)
    fitted = fit_candidate(ts, ModelParams(max_iter=40), SearchPolicy(train_window_options=(4, 0), tuning_trials=3),
                           calibrate_on_test=True)
    chosen = fitted.chosen
    assert fitted.calibration["method"] in ("none", "isotonic", "sigmoid")
    assert min(fitted.calibration[f"{m}_test_log_loss"] for m in ("none", "isotonic", "sigmoid")) == \
        fitted.calibration[f"{fitted.calibration['method']}_test_log_loss"]
    assert fitted.refit  # the default: the chosen trial fitted again with the validation days
    again = rebuild(ts, chosen.params, chosen.train_days, fitted.calibration["method"], refit=True)
    X = model_input(ts.frame)
    np.testing.assert_array_equal(fitted.model.predict_proba(X), again.model.predict_proba(X))
    assert again.threshold == fitted.threshold


def test_calibration_is_applied_only_when_it_lowers_test_log_loss(features):
    from assets.training.calibration import calibrate, calibration_error

    ts = training_set_of(features, DAYS)
    model = fit(ts, ModelParams(max_iter=40))
    # a model whose probabilities are squeezed toward 0.5 is badly calibrated: sigmoid fixes it
    squeezed = _Squeezed(model)
    chosen, figures = calibrate(squeezed, ts.split("validation"), ts.split("test"))
    assert figures["method"] != "none" and figures[f"{figures['method']}_test_log_loss"] < figures["none_test_log_loss"]
    test = ts.split("test")
    y = test[LABEL].to_numpy()
    assert calibration_error(y, chosen.predict_proba(model_input(test))[:, 1]) < \
        calibration_error(y, squeezed.predict_proba(model_input(test))[:, 1])
    assert calibration_error(np.array([0, 1, 1, 0]), np.array([0.0, 1.0, 0.99, 0.01])) < 0.01


class _Squeezed:
    """A fitted Pipeline whose classifier's probabilities are pulled toward 0.5 (miscalibrated)."""

    def __init__(self, model):
        from sklearn.base import BaseEstimator, ClassifierMixin

        inner = model.steps[-1][1]

        class Squeeze(ClassifierMixin, BaseEstimator):
            classes_ = inner.classes_

            def fit(self, X, y):
                return self

            def predict(self, X):
                return self.predict_proba(X).argmax(axis=1)

            def predict_proba(self, X):
                return 0.5 + (inner.predict_proba(X) - 0.5) * 0.3

            def __sklearn_is_fitted__(self):
                return True

        from sklearn.pipeline import Pipeline

        self.pipeline = Pipeline([("prepare", model.steps[0][1]), ("classify", Squeeze())])
        self.steps = self.pipeline.steps

    def predict_proba(self, X):
        return self.pipeline.predict_proba(X)


def test_permutation_importance_finds_the_feature_the_model_uses(features):
    from assets.evaluation.logic import permutation_importance_table

    ts = training_set_of(features, DAYS)
    model = fit(ts, ModelParams(max_iter=40))
    table = permutation_importance_table({"candidate": model, "champion": model}, ts.split("test"), rows=1500, repeats=2)
    assert {r["feature"] for r in table} == set(model_input(ts.split("test")).columns)
    top = table[0]
    assert top["candidate"] > 0.005 and top["candidate"] == top["champion"]  # same model, same shuffles
    assert [r["candidate"] for r in table] == sorted((r["candidate"] for r in table), reverse=True)
    # a feature the model never sees cannot matter: the calendar month is constant over these days
    assert next(r for r in table if r["feature"] == "month")["candidate"] == 0.0
