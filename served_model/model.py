"""What MLflow's scoring server runs: the registered scikit-learn Pipeline behind a typed request.

    POST /invocations  {"inputs": [{"carrier": "UA", "origin": "EWR", ..., "distance": 1400.0}, ...]}
    -> {"predictions": [[P(on time), P(late)], ...]}      one object per flight, any number

Each object holds the model's features (`FlightFeatures`): category strings and numbers; the
numbers that can be unknown at departure (weather, delay averages, the aircraft's previous
delay) may be null or left out. The check is MLflow's own, from the type hints of
`FlightDelayModel.predict`: a missing, unknown or mistyped field is a 400 that names it,
before the model runs.

Scoring: requests of up to SMALL_REQUEST rows skip pandas and scikit-learn's per-call input
checks, which cost ~5 ms per call whatever the rows: categories are encoded through a lookup
table that the Pipeline's own fitted encoder computed at load, and the fitted trees score the
matrix through Treelite's general tree inference (GTIL: the whole ensemble in one C++ call,
where scikit-learn calls each of up to 400 trees from Python); the raw score then
goes through the classifier's own link (the logistic function) or its fitted calibrator.
Larger requests go through `Pipeline.predict_proba`. Both give batch scoring's numbers to
1e-12 (tests/unit/test_served_model.py).

Logged by `candidate_model` as a model from code (served_model/entry.py) with the Pipeline as
an artifact folder; `ModelRegistry.load` reads that folder without running this.
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
import treelite.gtil
import treelite.sklearn
from pydantic import ConfigDict, create_model

from served_model.features import (
    FEATURE_COLUMNS_CATEGORICAL,
    FEATURE_COLUMNS_MAY_BE_MISSING,
    FEATURE_COLUMNS_NUMERIC,
    model_input,
)
from served_model.files import PIPELINE_ARTIFACT, load_pipeline

SMALL_REQUEST = 64

FlightFeatures = create_model(
    "FlightFeatures",
    __config__=ConfigDict(strict=True, extra="forbid"),
    **{c: (str, ...) for c in FEATURE_COLUMNS_CATEGORICAL},
    **{c: (float, ...) for c in FEATURE_COLUMNS_NUMERIC if c not in FEATURE_COLUMNS_MAY_BE_MISSING},
    # unknown values: null, or left out
    **{c: (float | None, None) for c in FEATURE_COLUMNS_MAY_BE_MISSING},
)


class FastScorer:
    """Scores rows (dicts of features) with a fitted Pipeline of a ColumnTransformer that
    ordinal-encodes the categorical columns and passes the rest through, then a classifier."""

    def __init__(self, pipeline):
        self.pipeline = pipeline
        prepare, classifier = pipeline.steps[0][1], pipeline.steps[-1][1]
        self.trees, self.to_probability = compiled_trees(classifier)
        self.columns = list(prepare.get_feature_names_out())  # the matrix the classifier sees
        encoder = prepare.named_transformers_["categories"]
        categorical = list(encoder.feature_names_in_)
        # value -> code, computed by the fitted encoder itself (infrequent groups included)
        known = {c: list(cats) for c, cats in zip(categorical, encoder.categories_)}
        width = max(len(v) for v in known.values())
        table = pd.DataFrame({c: (v + [v[0]] * width)[:width] for c, v in known.items()})[categorical]
        codes = encoder.transform(table)
        self.lookup = {c: dict(zip(known[c], codes[: len(known[c]), j].tolist())) for j, c in enumerate(categorical)}

    def matrix(self, rows: list[dict]) -> np.ndarray:
        X = np.empty((len(rows), len(self.columns)))
        for j, name in enumerate(self.columns):
            table = self.lookup.get(name)
            if table is None:
                X[:, j] = [np.nan if r[name] is None else r[name] for r in rows]
            else:  # unknown or missing category: NaN, like the encoder
                X[:, j] = [table.get(r[name], np.nan) for r in rows]
        return X

    def predict_proba(self, rows: list[dict]) -> np.ndarray:
        if len(rows) <= SMALL_REQUEST:
            # one thread: a few rows gain nothing from more, and the server answers requests side by side
            margin = treelite.gtil.predict(self.trees, self.matrix(rows), nthread=1, pred_margin=True).reshape(len(rows))
            late = self.to_probability(margin)
            return np.column_stack([1.0 - late, late])
        return self.pipeline.predict_proba(model_input(pd.DataFrame(rows)))


def fitted_trees(classifier):
    """The fitted gradient-boosted trees of the classifier step, and the map from their raw score
    to P(late): the logistic function, or the calibrator of a `CalibratedClassifierCV` around the
    frozen trees (assets/training/calibration.py)."""
    from scipy.special import expit
    from sklearn.calibration import CalibratedClassifierCV

    if isinstance(classifier, CalibratedClassifierCV):
        (calibrated,) = classifier.calibrated_classifiers_
        (calibrator,) = calibrated.calibrators
        trees = getattr(calibrated.estimator, "estimator", calibrated.estimator)  # inside FrozenEstimator
        return trees, lambda margin: np.clip(calibrator.predict(margin), 0.0, 1.0)
    if list(classifier.classes_) != [0, 1]:
        raise ValueError(f"a binary classifier of classes 0 and 1 expected, not {list(classifier.classes_)}")
    return classifier, expit


def compiled_trees(classifier):
    """`fitted_trees`, with the trees imported into Treelite."""
    trees, to_probability = fitted_trees(classifier)
    return treelite.sklearn.import_model(trees), to_probability


class FlightDelayModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        self.scorer = FastScorer(load_pipeline(context.artifacts[PIPELINE_ARTIFACT]))

    def predict(self, model_input: list[FlightFeatures], params: dict[str, Any] | None = None) -> list[list[float]]:
        rows = [r.__dict__ if hasattr(r, "__dict__") else dict(r) for r in model_input]
        return self.scorer.predict_proba(rows).tolist()
