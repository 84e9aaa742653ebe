"""The monitoring logic the assets call (assets/monitoring/logic.py), without Dagster: the thresholds
a run judges with, the drift reference cache, and the days judged one at a time on real slices
of the data (a day without scored flights, served traffic judged only from enough flights)."""

import numpy as np
import pandas as pd
import pytest

from assets.monitoring.logic import (
    DRIFT_COLUMNS,
    MIN_SERVED_ROWS,
    DriftThresholds,
    PerformanceThresholds,
    SnapshotNames,
    cached_reference,
    drift_days,
    labelled_rows,
    performance_days,
    trailing_span,
)
from resources.errors import DataProblem
from resources.settings import Settings
from tests.support import feature_days

NAMES = SnapshotNames(drift="drift", served_drift="served_drift", performance="performance",
                      trailing_roc_auc="trailing_roc_auc", evaluation_roc_auc="evaluation_roc_auc")


@pytest.fixture(scope="module")
def scored():
    """Three real days scored by a made-up model v1 (the probability follows the outcome)."""
    frame = feature_days(["2013-05-06", "2013-05-07", "2013-05-08"])
    rng = np.random.default_rng(0)
    p = np.clip(frame["is_late"].fillna(0) * 0.3 + rng.uniform(0, 0.7, len(frame)), 0, 1)
    return frame.assign(probability_late=p, predicted_late=(p >= 0.45).astype(int), threshold=0.45, model_version="1")


def test_thresholds_are_the_launchpads_else_the_settings():
    s = Settings.from_env({"FLIGHTS_DRIFT_SHARE": "0.4", "FLIGHTS_COLUMN_DRIFT_QUANTILE": "0.9", "FLIGHTS_ROC_AUC_DROP": "0.02"})
    assert DriftThresholds.of(s) == DriftThresholds(drift_share=0.4, column_threshold=0.0, quantile=0.9,
                                                    reference_rows=s.drift_reference_rows)
    given = DriftThresholds.of(s, drift_share=0.0, column_threshold=0.25, column_quantile=0.5, reference_rows=10)
    assert given == DriftThresholds(drift_share=0.0, column_threshold=0.25, quantile=0.5, reference_rows=1001)  # 0 is a value
    assert given.for_columns({"temp": 0.3}) == 0.25 and given.described == "0.25 for every column"
    assert DriftThresholds.of(s).for_columns({"temp": 0.3}) == {"temp": 0.3}
    assert DriftThresholds.of(s).described.startswith("calibrated: q0.9")
    assert PerformanceThresholds.of(s) == PerformanceThresholds(roc_auc_drop=0.02, window_days=s.performance_window_days)
    assert PerformanceThresholds.of(s, roc_auc_drop=-1.0, window_days=1) == PerformanceThresholds(-1.0, 1)


def test_a_reference_is_built_once_then_read_back(tmp_path):
    built = []

    def build():
        built.append(1)
        return pd.DataFrame({"partition_date": ["2013-05-06"], "temp": [1.5]}), {"temp": 0.2}

    stem = tmp_path / "reference" / "flight_delay_classifier-v1-abc-5000-q0.95"
    first, again = cached_reference(stem, build), cached_reference(stem, build)
    assert built == [1] and again[1] == first[1] == {"temp": 0.2}
    pd.testing.assert_frame_equal(again[0], first[0])
    assert sorted(p.name for p in stem.parent.iterdir()) == [stem.name + ".json", stem.name + ".parquet"]  # no temporary file


def test_trailing_windows_and_labels():
    assert trailing_span(["2013-05-03", "2013-05-05"], 2) == ["2013-05-02", "2013-05-03", "2013-05-04", "2013-05-05"]
    labelled = labelled_rows(pd.DataFrame({"is_late": [1.0, None, 0.0], "x": [1, 2, 3]}), "is_late")
    assert labelled["x"].tolist() == [1, 3] and labelled["is_late"].dtype.kind == "i"


def test_drift_is_judged_day_by_day_and_served_traffic_from_enough_flights(scored):
    reference_day, day = scored[scored["partition_date"] == "2013-05-06"], "2013-05-07"
    asked = []

    def reference_of(version):
        asked.append(version)
        return reference_day, {}

    current = scored[scored["partition_date"] == day]
    few = current.iloc[:MIN_SERVED_ROWS - 1][["partition_date", "model_version", *DRIFT_COLUMNS]]
    (judged,) = drift_days([day], current, few, reference_of, DriftThresholds(0.99, 0.0, 0.95, 1001), NAMES)
    assert judged.served is None and judged.served_rows == MIN_SERVED_ROWS - 1 and judged.passed
    assert judged.rows == len(current) and judged.version == "1" and asked == ["1"]
    assert judged.reference == f"{len(reference_day)} rows sampled from 2013-05-06 … 2013-05-06"
    assert judged.summary_row()["day"] == day and judged.summary_row()["dataset_drift"] is False

    # served flights, mostly by v2, in a heat wave: judged against v2's reference, and they fail the day
    served = current.iloc[:MIN_SERVED_ROWS + 10][["partition_date", "model_version", *DRIFT_COLUMNS]].copy()
    served["model_version"] = ["2"] * MIN_SERVED_ROWS + ["1"] * 10
    served["temp"] += 40
    asked.clear()
    (judged,) = drift_days([day], current, served, reference_of, DriftThresholds(0.05, 0.0, 0.95, 1001), NAMES)
    assert asked == ["1", "2"] and judged.served_version == "2" and judged.served_rows == MIN_SERVED_ROWS + 10
    assert "temp" in judged.served.drifted and not judged.served.passed and not judged.passed
    assert judged.served.snapshot.to_snapshot_model().metadata == {"day": day, "model_version": "2", "source": "served"}


def test_a_day_without_scored_flights_or_an_evaluation_roc_auc_is_a_data_problem(scored):
    from types import SimpleNamespace

    with pytest.raises(DataProblem, match="partition 2013-05-09: no scored flights to monitor"):
        list(drift_days(["2013-05-09"], scored, scored.iloc[:0], lambda v: (scored, {}), DriftThresholds(0.3, 0.0, 0.95, 1001), NAMES))
    labelled = labelled_rows(scored, "is_late")
    with pytest.raises(DataProblem, match="partition 2013-05-09: no scored flight with a known arrival"):
        list(performance_days(["2013-05-09"], labelled, None, PerformanceThresholds(0.05, 3), "is_late", NAMES))
    unevaluated = SimpleNamespace(label="flight_delay_classifier v1", evaluation_roc_auc=None)
    with pytest.raises(DataProblem, match="v1 has no evaluation ROC AUC"):
        list(performance_days(["2013-05-08"], labelled, lambda v: unevaluated, PerformanceThresholds(0.05, 3), "is_late", NAMES))
    mixed = scored.assign(model_version=np.where(np.arange(len(scored)) % 2, "1", "2"))
    with pytest.raises(DataProblem, match="several model versions"):
        list(drift_days(["2013-05-07"], mixed, scored.iloc[:0], lambda v: (scored, {}), DriftThresholds(0.3, 0.0, 0.95, 1001), NAMES))
