"""Calibrating a fitted candidate on the validation days (no Dagster): isotonic or sigmoid, kept
only when it lowers the test days' log loss, and the calibration error the model card reports."""

from __future__ import annotations

import numpy as np
import pandas as pd

from assets.features.logic import LABEL
from served_model.features import model_input

CALIBRATION_METHODS = ("none", "isotonic", "sigmoid")


def calibrated(model, val: pd.DataFrame, method: str, scorer=None):
    """`model` with its classifier step calibrated by `method`: the calibration map is fitted
    on the validation days' probabilities of `scorer` (default: `model`; after a refit, the
    searched model, whose validation probabilities are out of sample). It stays a Pipeline of
    the same two steps (the served model's fast path scores the classifier step on the prepared
    matrix). "none": `model` itself."""
    if method == "none":
        return model
    if method not in CALIBRATION_METHODS:
        raise ValueError(f"calibration {method!r}: expected one of {', '.join(CALIBRATION_METHODS)}")
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator
    from sklearn.pipeline import Pipeline

    scorer = scorer or model
    (_, prepare), (_, classifier) = scorer.steps[0], scorer.steps[-1]
    wrapped = CalibratedClassifierCV(FrozenEstimator(classifier), method=method)
    wrapped.fit(prepare.transform(model_input(val)), val[LABEL].to_numpy())
    if scorer is not model:  # the fitted map, around the refitted classifier
        (_, prepare), (_, classifier) = model.steps[0], model.steps[-1]
        wrapped.estimator = wrapped.calibrated_classifiers_[0].estimator = FrozenEstimator(classifier)
    return Pipeline([("prepare", prepare), ("classify", wrapped)])


def calibrate(model, val: pd.DataFrame, test: pd.DataFrame, scorer=None) -> tuple[object, dict]:
    """Isotonic and sigmoid calibration fitted on the validation days (`calibrated`); the one
    that lowers log loss on the test days the most is applied, none if neither lowers it.
    Returns the model to register (the same one when uncalibrated) and every method's test log
    loss and calibration error."""
    from sklearn.metrics import log_loss

    X_test, y_test = model_input(test), test[LABEL].to_numpy()
    figures, models = {}, {m: calibrated(model, val, m, scorer) for m in CALIBRATION_METHODS}
    for method, m in models.items():
        p = np.clip(m.predict_proba(X_test)[:, 1], 1e-6, 1 - 1e-6)
        figures[method] = {"test_log_loss": round(float(log_loss(y_test, p, labels=[0, 1])), 5),
                           "test_calibration_error": round(calibration_error(y_test, p), 5)}
    chosen = min(figures, key=lambda k: (figures[k]["test_log_loss"], k != "none"))
    return models[chosen], {"method": chosen, **{f"{k}_{x}": v for k, f in figures.items() for x, v in f.items()}}


def calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: |mean predicted - observed late share| over 10 equal-width
    bins of the probability, weighted by the bin's rows."""
    which = np.clip((np.asarray(p) * bins).astype(int), 0, bins - 1)
    total = 0.0
    for b in np.unique(which):
        m = which == b
        total += m.sum() * abs(float(np.mean(p[m])) - float(np.mean(y[m])))
    return float(total / max(len(y), 1))
