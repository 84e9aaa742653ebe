"""Evidently reports of one day on real slices of the data: drift verdicts per column agree with
Evidently's own count, injected drift is found, a one-class day does not break the report, and the
verdict of a day (what its Dagster check records) is the test its stored snapshot carries."""

import numpy as np
import pandas as pd
import pytest

from assets.monitoring.logic import DRIFT_COLUMNS_CATEGORICAL as CAT
from assets.monitoring.reports import classification_report, column_drift, drift_report_for_day
from tests.support import feature_days

NUM = ["sched_hour", "distance", "temp", "humid", "wind_speed", "pressure", "origin_mean_dep_delay_prev_2h"]


@pytest.fixture(scope="module")
def days():
    frame = feature_days(["2013-05-06", "2013-05-07", "2013-05-08", "2013-05-09"])
    return {d: part.reset_index(drop=True) for d, part in frame.groupby("partition_date")}


def test_a_sample_of_the_same_rows_shows_no_drift(days):
    reference = pd.concat([days["2013-05-06"], days["2013-05-07"], days["2013-05-08"]], ignore_index=True)
    current = reference.sample(n=900, random_state=1)
    result = drift_report_for_day(reference, current, NUM, CAT, drift_share=0.5)
    assert result.count == 0 and not result.dataset_drift
    assert {c["column"] for c in result.columns} == set(NUM + CAT)


def test_injected_drift_is_found_and_named(days, tmp_path):
    reference = pd.concat([days["2013-05-06"], days["2013-05-07"], days["2013-05-08"]], ignore_index=True)
    current = days["2013-05-09"].copy()
    current["distance"] = current["distance"] * 3  # routes three times as long
    current["sched_hour"] = (current["sched_hour"] + 8) % 24
    current["carrier"] = "ZZ"
    result = drift_report_for_day(reference, current, NUM, CAT, drift_share=0.5)
    drifted = {c["column"] for c in result.columns if c["drifted"]}
    assert {"distance", "sched_hour", "carrier"} <= drifted
    assert result.count == len(drifted)  # Evidently's count = the per-column verdicts
    assert result.share == pytest.approx(len(drifted) / len(NUM + CAT))
    by_name = {c["column"]: c for c in result.columns}
    assert by_name["distance"]["method"] == "Wasserstein distance (normed)"  # reference > 1000 rows
    assert by_name["carrier"]["method"] == "Jensen-Shannon distance"
    assert by_name["distance"]["score"] >= by_name["distance"]["threshold"]
    html = tmp_path / "drift.html"
    result.save_html(html)
    assert html.stat().st_size > 10_000 and "distance" in html.read_text(errors="ignore")


def test_column_threshold_override_changes_the_verdicts(days):
    reference = pd.concat([days["2013-05-06"], days["2013-05-07"]], ignore_index=True)
    current = days["2013-05-09"]
    default = column_drift(reference, current, NUM, CAT)
    loose = column_drift(reference, current, NUM, CAT, threshold=5.0)
    assert any(c["drifted"] for c in default)  # a single day's weather differs from other days'
    assert not any(c["drifted"] for c in loose) and {c["threshold"] for c in loose} == {5.0}


def test_classification_report_matches_sklearn_and_survives_one_class(days):
    from sklearn.metrics import precision_score, roc_auc_score

    rows = days["2013-05-09"].dropna(subset=["is_late"]).copy()
    rng = np.random.default_rng(0)
    rows["probability_late"] = np.clip(rows["is_late"] * 0.3 + rng.uniform(0, 0.7, len(rows)), 0, 1)
    rows["threshold"] = 0.45
    rows["predicted_late"] = (rows["probability_late"] >= 0.45).astype(int)
    result = classification_report(rows, "is_late")
    assert result.metrics["roc_auc"] == pytest.approx(roc_auc_score(rows["is_late"], rows["probability_late"]))
    assert result.metrics["precision"] == pytest.approx(precision_score(rows["is_late"], rows["predicted_late"]))
    assert sum(b["rows"] for b in result.calibration) == len(rows)
    one_class = rows.assign(is_late=0)
    assert np.isnan(classification_report(one_class, "is_late").metrics["roc_auc"])


def test_calibrated_thresholds_quiet_ordinary_days_but_not_real_shifts(days):
    from assets.monitoring.reports import calibrated_thresholds

    window = {d: days[d] for d in ("2013-05-06", "2013-05-07", "2013-05-08")}
    reference = pd.concat(window.values(), ignore_index=True).sample(n=2000, random_state=0)
    thresholds = calibrated_thresholds(reference, window, NUM, CAT, quantile=0.95)
    defaults = {c["column"]: c["threshold"] for c in column_drift(reference, days["2013-05-09"], NUM, CAT)}
    assert set(thresholds) == set(NUM + CAT)
    assert all(thresholds[c] >= defaults[c] for c in thresholds)  # never more sensitive than Evidently
    # the weather of a day differs from the other days' by more than Evidently's 0.1 ...
    plain = sum(c["drifted"] for c in column_drift(reference, days["2013-05-09"], NUM, CAT))
    calibrated = sum(c["drifted"] for c in column_drift(reference, days["2013-05-09"], NUM, CAT, thresholds))
    assert calibrated < plain
    # ... while a real shift still drifts with the calibrated thresholds
    shifted = days["2013-05-09"].assign(distance=days["2013-05-09"]["distance"] * 3, carrier="ZZ")
    verdicts = {c["column"]: c["drifted"] for c in column_drift(reference, shifted, NUM, CAT, thresholds)}
    assert verdicts["distance"] and verdicts["carrier"]
    result = drift_report_for_day(reference, shifted, NUM, CAT, drift_share=0.2, column_threshold=thresholds)
    assert result.count == sum(verdicts.values())  # Evidently's count with per-column thresholds agrees


def test_a_column_with_no_value_on_the_day_is_listed_not_judged(days):
    """wind_gust was never reported on 2013-03-10: Evidently refuses an empty column, so the day
    is judged on the other columns and the empty one is listed as not judged, not drifted."""
    reference = pd.concat([days["2013-05-06"], days["2013-05-07"]], ignore_index=True)
    current = days["2013-05-08"].assign(wind_gust=np.nan)
    result = drift_report_for_day(reference, current, [*NUM, "wind_gust"], CAT, drift_share=0.5)
    gust = next(c for c in result.columns if c["column"] == "wind_gust")
    assert gust["method"] == "n/a (no values)" and not gust["drifted"]
    assert result.judged == len(NUM) + len(CAT) and len(result.columns) == result.judged + 1
    assert result.share == pytest.approx(result.count / result.judged)


# --- the day's verdict is the test its snapshot carries ---------------------------------------------

def _names():
    from assets.monitoring.logic import SnapshotNames

    return SnapshotNames(drift="drift", served_drift="served_drift", performance="performance",
                         trailing_roc_auc="trailing_roc_auc", evaluation_roc_auc="evaluation_roc_auc")


def _stored_tests(snapshot, folder) -> list[str]:
    """The status of each test a snapshot carries once a workspace has stored it (what the Evidently UI shows)."""
    from evidently.ui.workspace import Workspace

    workspace = Workspace(str(folder / "evidently"))
    project = workspace.create_project("verdicts")
    stored = workspace.get_run(project.id, workspace.add_run(project.id, snapshot).id)
    return [str(getattr(t.status, "value", t.status)) for result in stored.metric_results.values() for t in result.tests]


def _scored(frame: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    p = np.clip(frame["is_late"].fillna(0) * 0.3 + rng.uniform(0, 0.7, len(frame)), 0, 1)
    return frame.assign(probability_late=p, predicted_late=(p >= 0.45).astype(int), threshold=0.45, model_version="1")


def test_each_days_drift_verdict_is_the_test_its_snapshot_carries(days, tmp_path):
    """A calm and a drifted day: the verdict drift_report records as its check (`DayDrift.passed`)
    is the result of the test in the day's snapshot as the workspace stores it, and a drift share
    threshold on either side of a day's share flips both."""
    from assets.monitoring.logic import DriftThresholds, drift_days, reference_and_thresholds

    window = _scored(pd.concat([days[d] for d in ("2013-05-06", "2013-05-07", "2013-05-08")], ignore_index=True))
    reference = reference_and_thresholds(window, 2000, 0.95)  # calibrated on its days, as the asset does
    calm = _scored(days["2013-05-09"])
    drifted = calm.assign(partition_date="2013-05-10", distance=calm["distance"] * 3, carrier="ZZ",
                          sched_hour=(calm["sched_hour"] + 8) % 24)
    current = pd.concat([calm, drifted], ignore_index=True)

    def verdicts(share: float) -> dict[str, tuple[bool, float]]:
        out = {}
        for day in drift_days(["2013-05-09", "2013-05-10"], current, current.iloc[:0], lambda version: reference,
                              DriftThresholds(share, 0.0, 0.95, 2000), _names()):
            stored = _stored_tests(day.batch.snapshot, tmp_path / f"{share}-{day.day}")
            assert stored == [t.status for t in day.batch.tests] and len(stored) == 1
            assert day.passed == (stored == ["SUCCESS"]) == (not day.batch.dataset_drift)
            out[day.day] = (day.passed, day.batch.share)
        return out

    at = verdicts(0.3)
    (calm_passed, calm_share), (drifted_passed, drifted_share) = at["2013-05-09"], at["2013-05-10"]
    assert calm_passed and not drifted_passed and 0 < calm_share < 0.3 <= drifted_share
    assert {d: v[0] for d, v in verdicts(drifted_share + 0.01).items()} == {"2013-05-09": True, "2013-05-10": True}
    assert {d: v[0] for d, v in verdicts(calm_share).items()} == {"2013-05-09": False, "2013-05-10": False}


def test_each_days_performance_verdict_is_the_test_its_snapshot_carries(days, tmp_path):
    """A healthy day, a degraded day and a day of one class: the verdict performance_report records
    as its check (`DayPerformance.passed`) is the result of the test of the trailing ROC AUC against
    its floor in the day's snapshot as stored; a larger allowed drop flips the degraded day in both;
    an undefined trailing ROC AUC has no test and no verdict."""
    from types import SimpleNamespace

    from assets.monitoring.logic import PerformanceThresholds, labelled_rows, performance_days

    healthy = _scored(days["2013-05-08"].dropna(subset=["is_late"]))  # ROC AUC ~0.8
    degraded = _scored(days["2013-05-09"].dropna(subset=["is_late"]))
    degraded["is_late"] = degraded["is_late"].sample(frac=1, random_state=0).to_numpy()  # outcomes shuffled: ROC AUC ~0.5
    one_class = _scored(days["2013-05-07"].dropna(subset=["is_late"])).assign(is_late=0)
    labelled = labelled_rows(pd.concat([healthy, degraded, one_class], ignore_index=True), "is_late")
    record = SimpleNamespace(label="flight_delay_classifier v1", evaluation_roc_auc=0.78)

    def verdicts(drop: float) -> dict[str, bool]:
        out = {}
        for day in performance_days(["2013-05-07", "2013-05-08", "2013-05-09"], labelled, lambda version: record,
                                    PerformanceThresholds(drop, 1), "is_late", _names()):
            stored = _stored_tests(day.result.snapshot, tmp_path / f"{drop}-{day.day}")
            assert stored == [t.status for t in day.result.tests]
            assert day.passed == all(s == "SUCCESS" for s in stored)
            assert (stored == []) == np.isnan(day.trailing.roc_auc)  # no ROC AUC of one class: no test
            if stored:
                assert day.passed == (day.trailing.roc_auc > day.trailing.floor) and day.trailing.floor == 0.78 - drop
            out[day.day] = day.passed
        return out

    assert verdicts(0.05) == {"2013-05-07": True, "2013-05-08": True, "2013-05-09": False}
    assert verdicts(0.4) == {"2013-05-07": True, "2013-05-08": True, "2013-05-09": True}
