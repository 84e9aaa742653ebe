"""The served model: its small-request path (the trees compiled by Treelite) scores like the
fitted Pipeline to 1e-12, calibrated or not, and its request schema rejects missing, unknown and
mistyped fields."""

import numpy as np
import pydantic
import pytest

from assets.training.logic import ModelParams, fit
from served_model.features import model_input
from served_model.model import SMALL_REQUEST, FastScorer, FlightFeatures
from tests.support import feature_days, json_records, training_set_of

DAYS = [f"2013-07-{d:02d}" for d in range(1, 9)]


@pytest.fixture(scope="module")
def fitted():
    ts = training_set_of(feature_days(DAYS), DAYS)
    model = fit(ts, ModelParams(max_iter=60))
    rows = model_input(ts.split("test"))
    return model, rows, ts


@pytest.mark.parametrize("calibration", ["none", "isotonic", "sigmoid"])
def test_small_requests_score_like_the_pipeline(fitted, calibration):
    from sklearn.calibration import CalibratedClassifierCV

    from assets.training.calibration import calibrated

    model, rows, ts = fitted
    model = calibrated(model, ts.split("validation"), calibration)
    assert isinstance(model.steps[-1][1], CalibratedClassifierCV) == (calibration != "none")  # the path under test
    rows = rows.head(SMALL_REQUEST).copy()
    # what the encoder has never seen, and values the features leave unknown
    rows.loc[rows.index[0], "dest"] = "XXX"
    rows.loc[rows.index[1], "route"] = "EWR-XXX"
    rows.loc[rows.index[2], ["temp", "wind_gust", "origin_mean_dep_delay_prev_2h"]] = np.nan
    expected = model.predict_proba(rows)
    scorer = FastScorer(model)
    records = json_records(rows)
    assert np.isnan(scorer.matrix(records[:2])[0, scorer.columns.index("dest")])  # unknown -> NaN
    np.testing.assert_allclose(scorer.predict_proba(records), expected, rtol=0, atol=1e-12)
    for i in (0, 1, 2, 7):  # single rows, the serving case
        np.testing.assert_allclose(scorer.predict_proba(records[i:i + 1]), expected[i:i + 1], rtol=0, atol=1e-12)


def test_large_requests_go_through_the_pipeline(fitted):
    model, rows, _ = fitted
    rows = rows.head(SMALL_REQUEST * 3)
    assert len(rows) > SMALL_REQUEST
    np.testing.assert_allclose(FastScorer(model).predict_proba(json_records(rows)), model.predict_proba(rows), rtol=0, atol=1e-12)


def test_the_request_schema_names_what_is_wrong(fitted):
    _, rows, _ = fitted
    good = json_records(rows.head(1))[0]
    FlightFeatures(**good)
    FlightFeatures(**{k: v for k, v in good.items() if k != "wind_gust"})  # may be unknown
    for bad, field in [
        ({k: v for k, v in good.items() if k != "distance"}, "distance"),  # missing
        ({**good, "distance": "far"}, "distance"),  # mistyped
        ({**good, "distance": None}, "distance"),  # never unknown
        ({**good, "carrier": 9}, "carrier"),  # a number for a category
        ({**good, "distanse": 1.0}, "distanse"),  # unknown field
    ]:
        with pytest.raises(pydantic.ValidationError, match=field):
            FlightFeatures(**bad)
