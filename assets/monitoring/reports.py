"""Evidently 0.7 reports of one day: data drift against a reference, and binary classification
quality once labels are known. Plain functions (no Dagster), shared by the monitoring assets and
the closed-loop replay; Evidently is imported on first use only.

Drift is computed as Evidently computes it, fast: `DriftedColumnsCount` gives the dataset
verdict and the HTML report; the per-column method, score, threshold and verdict come from the
same stat tests Evidently runs inside it (`get_stattest`, default method by column type and
reference size), and the two are checked to agree. Evidently's `ValueDrift` builds a plotly chart
per column inside its calculation (~45 ms a column), so the HTML carries per-column charts only
for the most drifted columns, which keeps a day's report under a second.

Each day's verdict is an Evidently test on the metric it judges (the drifted share of the columns
against the drift share threshold, the trailing ROC AUC against its floor), so the snapshot in the
workspace shows the pass/fail the Dagster checks record: the checks read their verdict from the
snapshot's test results (`SnapshotTest`, `.passed`), never beside it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

CHARTED_COLUMNS = 4  # per-column drift charts in the HTML: the most drifted ones
LATE_COLUMN = "late"  # the outcome as a number in a performance snapshot (its mean: the late share)
# The drifted share and count as constant columns of a drift snapshot, whose Evidently `MeanValue`s
# the dashboard plots: the service keys a series by every parameter of its metric, and those of
# `DriftedColumnsCount` (the judged columns, the per-column thresholds of the model) change from day
# to day and at every retrain, which split one measure into several lines of the same name.
DRIFT_SHARE_COLUMN, DRIFTED_COUNT_COLUMN = "share_of_drifted_columns", "number_of_drifted_columns"


@dataclass(frozen=True)
class SnapshotTest:
    """An Evidently test of a snapshot and its outcome, as the workspace stores and shows it."""

    name: str
    description: str
    status: str  # SUCCESS, FAIL, WARNING, ERROR

    @property
    def passed(self) -> bool:
        return self.status == "SUCCESS"


def snapshot_tests(snapshot) -> list[SnapshotTest]:
    """The test results a snapshot carries (what the Evidently UI shows as the day's pass/fail)."""
    return [SnapshotTest(t.name, t.description, str(getattr(t.status, "value", t.status))) for t in snapshot.tests_results]


@dataclass
class DriftResult:
    count: int
    share: float
    dataset_drift: bool  # the snapshot's test on the drifted share failed
    columns: list[dict] = field(default_factory=list)  # column, method, score, threshold, drifted
    snapshot: object = None
    tests: list[SnapshotTest] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """The verdict of the snapshot's tests: no dataset drift."""
        return all(t.passed for t in self.tests)

    @property
    def drifted(self) -> str:
        """The drifted columns' names, or 'none'."""
        return ", ".join(c["column"] for c in self.columns if c["drifted"]) or "none"

    @property
    def judged(self) -> int:
        """How many columns had values to judge (the share's denominator)."""
        return sum(c["method"] != NOT_JUDGED for c in self.columns)

    def save_html(self, path) -> None:
        self.snapshot.save_html(str(path))


def _definition(numeric: list[str], categorical: list[str]):
    from evidently import DataDefinition

    return DataDefinition(numerical_columns=list(numeric), categorical_columns=list(categorical))


Thresholds = float | dict[str, float] | None  # one for all columns, one per column, or defaults


def _stat_test(reference: pd.Series, current: pd.Series, categorical: bool, threshold: float | None):
    """The drift test Evidently's `DriftedColumnsCount` / `ValueDrift` pick for a column (by type
    and reference size), and its result: (test, result with drift_score, actual_threshold,
    drifted).

    Evidently 0.7 exposes per-column drift publicly only as `ValueDrift`, which renders a plotly
    chart inside its calculation (~45 ms a column, ~1 s a day for our 19 columns); the test
    selection and the tests themselves live only under `evidently.legacy` (the 0.7 migration moved
    per-column drift to `ValueDrift`: evidentlyai/evidently#1556). This wrapper is the one place
    that reaches there; `drift_report_for_day` checks on every report that its verdicts agree with
    Evidently's own `DriftedColumnsCount`, so a change upstream fails loudly, not silently.
    """
    from evidently.legacy.calculations.stattests import get_stattest
    from evidently.legacy.core import ColumnType

    kind = ColumnType.Categorical if categorical else ColumnType.Numerical
    test = get_stattest(reference, current, kind, None)
    return test, test(reference, current, kind, threshold)


def _threshold(thresholds, column: str) -> float | None:
    return thresholds.get(column) if isinstance(thresholds, dict) else thresholds


NOT_JUDGED = "n/a (no values)"


def column_drift(reference: pd.DataFrame, current: pd.DataFrame, numeric: list[str], categorical: list[str],
                 threshold: Thresholds = None) -> list[dict]:
    """Method, score, threshold and verdict of each column, by the stat test Evidently picks.
    `threshold`: one for every column, one per column (dict), or None for the method's default."""
    out = []
    for column in [*numeric, *categorical]:
        ref, cur = reference[column].dropna(), current[column].dropna()
        if ref.empty or cur.empty:
            out.append({"column": column, "method": NOT_JUDGED, "score": float("nan"),
                        "threshold": _threshold(threshold, column), "drifted": False})
            continue
        test, res = _stat_test(ref, cur, column in categorical, _threshold(threshold, column))
        out.append({"column": column, "method": test.display_name, "score": round(float(res.drift_score), 5),
                    "threshold": float(res.actual_threshold), "drifted": bool(res.drifted)})
    return out


def calibrated_thresholds(reference: pd.DataFrame, days: dict[str, pd.DataFrame], numeric: list[str],
                          categorical: list[str], quantile: float) -> dict[str, float]:
    """Per-column thresholds from the reference period itself: the `quantile` of the distances
    between each of its days and the reference, never below the method's default.

    A day of flights is not a random sample of a two-month window (one day's weather is a few
    dozen hourly readings), so against Evidently's defaults nearly every real day "drifts" on
    most columns. Calibrated this way, a column drifts when the day is further from the
    reference than the model's own training days were."""
    scores: dict[str, list[float]] = {}
    defaults: dict[str, float] = {}
    for rows in days.values():
        for c in column_drift(reference, rows, numeric, categorical):
            if np.isfinite(c["score"]):
                scores.setdefault(c["column"], []).append(c["score"])
                defaults[c["column"]] = c["threshold"]
    out = {}
    for column in [*numeric, *categorical]:
        if column not in scores:
            continue
        # p-value methods (only with references of 1000 rows or fewer) drift below the threshold
        out[column] = round(max(defaults[column], float(np.quantile(scores[column], quantile))), 5)
    return out


def _excess(c: dict) -> float:
    """How far past its threshold a column is, comparable across p-value and distance methods."""
    if not np.isfinite(c["score"]):
        return -np.inf
    return c["threshold"] - c["score"] if "p_value" in c["method"] else c["score"] - c["threshold"]


@dataclass(frozen=True)
class SnapshotLabels:
    """How a day's snapshot is filed in an Evidently workspace: its day (the snapshot's
    timestamp, so dashboards plot replayed days), tags and metadata."""

    day: str
    tags: tuple[str, ...] = ()
    metadata: dict = field(default_factory=dict)

    def run_kwargs(self) -> dict:
        from datetime import datetime

        return {"timestamp": datetime.fromisoformat(self.day), "tags": list(self.tags),
                "metadata": {"day": self.day, **{k: str(v) for k, v in self.metadata.items()}}}


def _run_kwargs(labels: SnapshotLabels | None) -> dict:
    return labels.run_kwargs() if labels else {}


def drift_report_for_day(reference: pd.DataFrame, current: pd.DataFrame, numeric: list[str], categorical: list[str],
                         drift_share: float, column_threshold: Thresholds = None,
                         labels: SnapshotLabels | None = None) -> DriftResult:
    """The day's drift against the reference. The dataset verdict is the snapshot's test on
    `DriftedColumnsCount`'s share (below `drift_share`: no drift), as Evidently shows it."""
    from evidently import Dataset, Report
    from evidently.metrics import DriftedColumnsCount, MeanValue, ValueDrift
    from evidently.tests import lt

    per_column = column_drift(reference, current, numeric, categorical, column_threshold)
    # a column with no value on the day (or in the reference) is listed, not judged: Evidently
    # refuses an empty column, and nothing about it can have drifted (wind_gust on 2013-03-10)
    judged = {c["column"] for c in per_column if c["method"] != NOT_JUDGED}
    numeric, categorical = [c for c in numeric if c in judged], [c for c in categorical if c in judged]
    if not judged:
        raise ValueError("no monitored column has a value on the day: nothing to judge for drift")
    columns = [*numeric, *categorical]
    charted = [c["column"] for c in sorted(per_column, key=_excess, reverse=True) if c["column"] in judged][:CHARTED_COLUMNS]
    expected = sum(c["drifted"] for c in per_column)  # checked against Evidently's count below
    figures = {DRIFT_SHARE_COLUMN: expected / len(columns), DRIFTED_COUNT_COLUMN: float(expected)}
    definition = _definition([*numeric, *figures], categorical)
    thresholds = ({"per_column_threshold": {c: t for c, t in column_threshold.items() if c in judged}}
                  if isinstance(column_threshold, dict) else {"threshold": column_threshold})
    metrics = [DriftedColumnsCount(columns=columns, drift_share=drift_share, share_tests=[lt(drift_share)], **thresholds),
               *(ValueDrift(column=c, threshold=_threshold(column_threshold, c)) for c in charted),
               *(MeanValue(column=c) for c in figures)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snapshot = Report(metrics).run(
            Dataset.from_pandas(current[columns].assign(**figures), data_definition=definition),
            Dataset.from_pandas(reference[columns].assign(**figures), data_definition=definition),
            **_run_kwargs(labels),
        )
    count = share = None
    for result in snapshot.metric_results.values():
        if result.metric_value_location.metric.params["type"].endswith(":DriftedColumnsCount"):
            count, share = int(result.count.value), float(result.share.value)
    if count is None:
        raise RuntimeError("Evidently returned no DriftedColumnsCount result")
    if count != expected:
        raise RuntimeError(
            f"per-column drift verdicts ({expected}) disagree with Evidently's "
            f"DriftedColumnsCount ({count}); Evidently's drift methods changed?")
    tests = snapshot_tests(snapshot)
    passed = bool(tests) and all(t.passed for t in tests)
    if passed != (share < drift_share):
        raise RuntimeError(f"Evidently's test of the drifted share {share} against {drift_share} is {tests}: "
                           "its comparison changed?")
    return DriftResult(count=count, share=share, dataset_drift=not passed, columns=per_column, snapshot=snapshot,
                       tests=tests)


@dataclass
class ClassificationResult:
    metrics: dict[str, float]  # roc_auc, precision, recall, f1, log_loss (Evidently), brier (sklearn)
    calibration: list[dict]
    snapshot: object = None
    tests: list[SnapshotTest] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """The verdict of the snapshot's tests (no test, e.g. an undefined figure: nothing failed)."""
        return all(t.passed for t in self.tests)

    def save_html(self, path) -> None:
        self.snapshot.save_html(str(path))


def classification_report(rows: pd.DataFrame, label: str, probability: str = "probability_late",
                          predicted: str = "predicted_late", threshold_column: str = "threshold",
                          labels: SnapshotLabels | None = None, figures: dict[str, float] | None = None,
                          floors: dict[str, float] | None = None) -> ClassificationResult:
    """Quality of the day's predictions against the day's outcomes. With a single class in the
    day ROC AUC is undefined (NaN); the other figures remain.

    The snapshot also carries Evidently `MeanValue`s of the probability, of the outcome as a
    number (`late`, the late share) and of each of `figures` (figures computed outside the
    day, e.g. the trailing ROC AUC, as constant columns), so a dashboard can plot them over days
    with Evidently's own metrics. `floors`: a figure passes its snapshot test when it is above
    its floor; an undefined figure gets no test (it is no verdict)."""
    from evidently import BinaryClassification, DataDefinition, Dataset, Report
    from evidently.metrics import F1Score, LogLoss, MeanValue, Precision, Recall, RocAuc
    from evidently.tests import gt
    from sklearn.metrics import brier_score_loss

    from assets.evaluation.logic import calibration_table

    threshold = float(rows[threshold_column].iloc[0])
    frame = rows[[label, probability, predicted]].copy()
    frame[label] = frame[label].astype(int)
    frame[LATE_COLUMN] = frame[label].astype(float)
    for name, value in (figures or {}).items():
        frame[name] = float("nan") if value is None else float(value)
    summaries = [probability, LATE_COLUMN, *(figures or {})]
    definition = DataDefinition(
        classification=[BinaryClassification(target=label, prediction_labels=predicted,
                                             prediction_probas=probability, pos_label=1)],
        numerical_columns=summaries, categorical_columns=[label, predicted],
    )
    names = {"RocAuc": "roc_auc", "Precision": "precision", "Recall": "recall", "F1Score": "f1", "LogLoss": "log_loss"}

    def floor_test(column: str) -> dict:
        value, floor = (figures or {}).get(column), (floors or {}).get(column)
        return {"tests": [gt(floor)]} if floor is not None and value is not None and np.isfinite(value) else {}

    # labels follow from the probabilities at the model's own operating threshold
    report = Report([RocAuc(), Precision(probas_threshold=threshold), Recall(probas_threshold=threshold),
                     F1Score(probas_threshold=threshold), LogLoss(), *(MeanValue(column=c, **floor_test(c)) for c in summaries)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snapshot = report.run(Dataset.from_pandas(frame, data_definition=definition), None, **_run_kwargs(labels))
    values = {}
    for result in snapshot.metric_results.values():
        kind = result.metric_value_location.metric.params["type"].split(":")[-1]
        if kind in names:
            values[names[kind]] = float(result.value)
    y, p = frame[label].to_numpy(), frame[probability].to_numpy(dtype=float)
    values["brier"] = float(brier_score_loss(y, p))
    return ClassificationResult(metrics=values, calibration=calibration_table(y, p), snapshot=snapshot,
                                tests=snapshot_tests(snapshot))
