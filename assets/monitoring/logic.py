"""Monitoring logic (no Dagster): the columns watched for drift, a model's drift reference and
calibrated thresholds, the thresholds a run judges with, and each day's reports and verdicts
(dataset drift, degraded performance), computed day by day for the assets to file.

Evidently itself is wrapped in assets/monitoring/reports.py; a day's verdict is the result of the
tests its Evidently snapshot carries."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from assets.common import days_ending
from assets.monitoring.reports import (
    ClassificationResult,
    DriftResult,
    SnapshotLabels,
    calibrated_thresholds,
    classification_report,
    drift_report_for_day,
)
from resources.errors import DataProblem

# Columns watched for drift: what the model sees and can shift, plus its output. Calendar columns
# are left out on purpose: a single day has one weekday, one month and one day of the year, so
# they "drift" every day by construction and would drown the real signal.
DRIFT_COLUMNS_NUMERIC = [
    "sched_hour", "distance", "temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust",
    "precip", "pressure", "visib", "origin_departures_prev_2h", "origin_mean_dep_delay_prev_2h",
    "origin_late_share_prev_2h", "origin_waiting_flights", "origin_scheduled_prev_1h",
    "probability_late",
]
# `dest` (about 100 airports) is left out too: on a ~900-flight day its Jensen-Shannon distance
# to the reference exceeds the 0.1 threshold from sampling noise alone.
DRIFT_COLUMNS_CATEGORICAL = ["carrier", "origin"]
DRIFT_COLUMNS = DRIFT_COLUMNS_NUMERIC + DRIFT_COLUMNS_CATEGORICAL
KEY = ["partition_date", "row_number"]
MIN_SERVED_ROWS = 50  # served flights of a day below which their drift is not judged
# a flight asked by flight (/predict) on a served day whose scheduled departure is more than a day
# before it: the caller's clock or cache is stale, and the features answered are another day's
STALE_SERVED_DAYS = 1
MAX_STALE_SERVED_SHARE = 0.05  # of a day's flights asked by flight, above which `served_requests_current` warns
MIN_ASKED_BY_FLIGHT = 20  # asked-by-flight answers of a day below which the share is not judged


def _setting(value, default):
    """A Launchpad value, or the setting when it is unset."""
    return default if value is None else value


def atomic_write(path: Path, write) -> Path:
    """Write through a temporary file and rename: a failed run leaves no half-written report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    tmp.replace(path)
    return path


def cached_reference(stem: Path, build: Callable[[], tuple[pd.DataFrame, dict[str, float]]]) -> tuple[pd.DataFrame, dict[str, float]]:
    """A reference sample and its column thresholds, read from `stem`.parquet/.json, or built and
    written there (atomically). The suffix is appended: `with_suffix` would take a quantile's
    decimals (`-q0.95`) for one, and q0.9 and q0.95 would share a file."""
    sample_path, thresholds_path = stem.with_name(stem.name + ".parquet"), stem.with_name(stem.name + ".json")
    if sample_path.exists() and thresholds_path.exists():
        return pd.read_parquet(sample_path), json.loads(thresholds_path.read_text())
    ref, thresholds = build()
    atomic_write(sample_path, lambda p: ref.to_parquet(p, index=False))
    atomic_write(thresholds_path, lambda p: p.write_text(json.dumps(thresholds, indent=1)))
    return ref, thresholds


def reference_and_thresholds(window: pd.DataFrame, rows: int, quantile: float) -> tuple[pd.DataFrame, dict[str, float]]:
    """The reference sample (fixed seed) of a scored training window and its column thresholds
    calibrated on the window's days."""
    sample = window.sample(n=min(rows, len(window)), random_state=0).sort_values(KEY, kind="stable")
    ref = sample[["partition_date", *DRIFT_COLUMNS]].reset_index(drop=True)
    by_day = {d: part for d, part in window.groupby("partition_date")}
    thresholds = calibrated_thresholds(ref, by_day, DRIFT_COLUMNS_NUMERIC, DRIFT_COLUMNS_CATEGORICAL, quantile)
    return ref, thresholds


def day_version(day_rows: pd.DataFrame, day: str) -> str:
    """The one model version that scored a day's rows."""
    versions = day_rows["model_version"].unique()
    if len(versions) != 1:
        raise DataProblem(f"partition {day}: predictions come from several model versions {sorted(versions)}; "
                          "re-score the day (score_job) before monitoring it")
    return str(versions[0])


def trailing_days(day: str, n: int) -> list[str]:
    return days_ending(day, n)


def trailing_span(days: list[str], n: int) -> list[str]:
    """Every day the trailing windows of `days` cover."""
    return sorted({d for day in days for d in trailing_days(day, n)})


def labelled_rows(scored: pd.DataFrame, label: str) -> pd.DataFrame:
    """The scored flights whose arrival is known, the label as 0/1."""
    labelled = scored[scored[label].notna()].copy()
    labelled[label] = labelled[label].astype(int)
    return labelled


@dataclass(frozen=True)
class TrailingPerformance:
    """A model's ROC AUC over the trailing labelled days it scored, against its evaluation ROC AUC:
    degraded when it is at or below `floor` (the evaluation ROC AUC less the allowed drop), the
    test its performance snapshot carries."""

    roc_auc: float  # NaN when the pooled rows hold one class: no verdict
    drop: float
    floor: float
    days: int
    flights: int
    first_day: str


def trailing_performance(labelled: pd.DataFrame, day: str, version: str, window_days: int,
                         evaluation_roc_auc: float, drop_threshold: float, label: str) -> TrailingPerformance:
    from sklearn.metrics import roc_auc_score

    pooled = labelled[labelled["partition_date"].isin(trailing_days(day, window_days))
                      & (labelled["model_version"] == version)]
    auc = float(roc_auc_score(pooled[label], pooled["probability_late"])) if pooled[label].nunique() == 2 else float("nan")
    return TrailingPerformance(roc_auc=auc, drop=evaluation_roc_auc - auc, floor=evaluation_roc_auc - drop_threshold,
                               days=pooled["partition_date"].nunique(), flights=len(pooled),
                               first_day=str(pooled["partition_date"].min()))


def rounded(value: float, digits: int = 4) -> float | None:
    """A figure for a report, or None when it is undefined (e.g. ROC AUC of a one-class day)."""
    return round(value, digits) if math.isfinite(value) else None


# The tables of the reports' metadata: (column, type, description) of the rows the logic makes
COLUMNS_TABLE = [("column", "string", "monitored column"), ("method", "string", "Evidently's drift method; "
                 "n/a (no values): not judged"), ("score", "float", "drift score"), ("threshold", "float", "the column "
                 "drifts from this score on (p-value methods: below it)"), ("drifted", "bool", "the column's verdict")]
CALIBRATION_TABLE = [("bin", "string", "predicted probability"), ("rows", "int", "flights"),
                     ("mean_predicted", "float", "mean predicted probability"), ("observed_late", "float", "late share")]
DRIFT_SUMMARY = [("day", "string", ""), ("drift_share", "float", "share of the judged columns that drifted"),
                 ("dataset_drift", "bool", "the day's verdict"), ("drifted", "string", "drifted columns")]
PERFORMANCE_SUMMARY = [("day", "string", ""), ("roc_auc", "float", "on the day"), ("trailing_roc_auc", "float", "over the "
                       "trailing days"), ("drop", "float", "below the evaluation ROC AUC"), ("degraded", "bool", "the day's verdict")]


@dataclass(frozen=True)
class SnapshotNames:
    """How the day's snapshots are filed for the workspace's dashboard: their tags, and the names
    of the figures a performance snapshot carries (resources/monitoring_workspace.py)."""

    drift: str
    served_drift: str
    performance: str
    trailing_roc_auc: str
    evaluation_roc_auc: str
    served_roc_auc: str = "served_roc_auc"


# --- drift ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DriftThresholds:
    """What a run judges drift with: the Launchpad's values, else the settings."""

    drift_share: float  # dataset drift from this share of the judged columns drifted
    column_threshold: float  # one threshold for every column; 0 = calibrated per column on the reference
    quantile: float  # calibrated thresholds: this quantile of the training days' distances
    reference_rows: int

    @classmethod
    def of(cls, s, drift_share=None, column_threshold=None, column_quantile=None, reference_rows=None) -> DriftThresholds:
        """`s`: the settings (resources/settings.py); the others: the Launchpad's, None = the setting."""
        return cls(drift_share=_setting(drift_share, s.drift_share),
                   column_threshold=_setting(column_threshold, s.column_drift_threshold),
                   quantile=_setting(column_quantile, s.column_drift_quantile),
                   reference_rows=s.drift_reference_rows if reference_rows is None else max(1001, reference_rows))

    def for_columns(self, calibrated: dict[str, float]) -> float | dict[str, float]:
        return self.column_threshold or calibrated

    @property
    def described(self) -> str:
        return (f"{self.column_threshold} for every column" if self.column_threshold
                else f"calibrated: q{self.quantile} of the training days' distances, at least Evidently's default")


@dataclass
class DayDrift:
    """One day's drift: the batch-scored flights against the reference of the model that scored
    them, and the served flights (at least MIN_SERVED_ROWS) against the reference of the version
    that served most of them."""

    day: str
    version: str
    rows: int
    reference: str  # the reference sample, in words
    batch: DriftResult
    served_rows: int = 0
    served_version: str | None = None
    served: DriftResult | None = None
    asked_by_flight: int = 0  # served rows asked by flight (/predict)
    stale: int = 0  # of those, for a departure more than STALE_SERVED_DAYS before the served day (not judged for drift)
    oldest_departure: str | None = None

    @property
    def stale_share(self) -> float:
        return self.stale / self.asked_by_flight if self.asked_by_flight else 0.0

    @property
    def served_current(self) -> bool:
        """The day's served requests were for the day's flights (fewer than MIN_ASKED_BY_FLIGHT: not judged)."""
        return self.asked_by_flight < MIN_ASKED_BY_FLIGHT or self.stale_share <= MAX_STALE_SERVED_SHARE

    @property
    def passed(self) -> bool:
        """The day's verdict: every test of its snapshots passed (no dataset drift, batch or served)."""
        return self.batch.passed and (self.served is None or self.served.passed)

    def summary_row(self) -> dict:
        return {"day": self.day, "drift_share": round(self.batch.share, 3), "dataset_drift": self.batch.dataset_drift,
                "drifted": ", ".join(c["column"] for c in self.batch.columns if c["drifted"])}


def stale_requests(served_day: pd.DataFrame, day: str) -> pd.Series:
    """Which served rows of `day` were asked by flight for a departure more than
    STALE_SERVED_DAYS days before it (a stale caller)."""
    from datetime import date, timedelta

    if "scheduled_departure" not in served_day:  # no flight asked by flight
        return pd.Series(False, index=served_day.index)
    cutoff = (date.fromisoformat(day) - timedelta(days=STALE_SERVED_DAYS)).isoformat()
    departure = served_day["scheduled_departure"]
    return departure.notna() & (departure.astype("string").str[:10] < cutoff).fillna(False)


def drift_days(days: list[str], current: pd.DataFrame, served: pd.DataFrame,
               reference_of: Callable[[str], tuple[pd.DataFrame, dict[str, float]]],
               thresholds: DriftThresholds, names: SnapshotNames) -> Iterator[DayDrift]:
    """Each day's drift reports, one day at a time (a long backfill holds one day's snapshots).
    `current`: the scored flights of `days`; `served`: the flights the scoring server served;
    `reference_of(version)`: a model's reference sample and calibrated thresholds (asked once a version)."""
    references: dict[str, tuple] = {}

    def judge(ref_version: str, rows: pd.DataFrame, labels: SnapshotLabels) -> DriftResult:
        if ref_version not in references:
            references[ref_version] = reference_of(ref_version)
        ref, calibrated = references[ref_version]
        return drift_report_for_day(ref, rows, DRIFT_COLUMNS_NUMERIC, DRIFT_COLUMNS_CATEGORICAL, drift_share=thresholds.drift_share,
                                    column_threshold=thresholds.for_columns(calibrated), labels=labels)

    for day in days:
        rows = current[current["partition_date"] == day]
        if rows.empty:
            raise DataProblem(f"partition {day}: no scored flights to monitor (table predictions); run score_job for the day first")
        version = day_version(rows, day)
        batch = judge(version, rows, SnapshotLabels(day, (names.drift,), {"model_version": version}))
        ref = references[version][0]
        result = DayDrift(day, version, len(rows), f"{len(ref)} rows sampled from {ref['partition_date'].min()} … "
                          f"{ref['partition_date'].max()}", batch)
        served_day = served[served["partition_date"] == day]
        result.served_rows = len(served_day)
        stale = stale_requests(served_day, day)
        result.asked_by_flight = int(served_day["scheduled_departure"].notna().sum()) if "scheduled_departure" in served_day else 0
        result.stale = int(stale.sum())
        if result.stale:
            result.oldest_departure = str(served_day.loc[stale, "scheduled_departure"].min())
            served_day = served_day[~stale]  # another day's features: not evidence about the day's traffic
        if len(served_day) >= MIN_SERVED_ROWS:
            result.served_version = str(served_day["model_version"].mode().iloc[0])
            result.served = judge(result.served_version, served_day[served_day["model_version"] == result.served_version],
                                  SnapshotLabels(day, (names.served_drift,), {"model_version": result.served_version,
                                                                                "source": "served"}))
        yield result


# --- performance ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class PerformanceThresholds:
    """What a run judges performance with: the Launchpad's values, else the settings."""

    roc_auc_drop: float  # degraded when the trailing ROC AUC is this far below the evaluation ROC AUC
    window_days: int  # trailing days pooled for that ROC AUC

    @classmethod
    def of(cls, s, roc_auc_drop=None, window_days=None) -> PerformanceThresholds:
        return cls(roc_auc_drop=_setting(roc_auc_drop, s.roc_auc_drop), window_days=_setting(window_days, s.performance_window_days))


@dataclass
class DayPerformance:
    """One day's classification quality and the model's trailing ROC AUC against its evaluation."""

    day: str
    version: str
    evaluation_roc_auc: float
    trailing: TrailingPerformance
    result: ClassificationResult
    rows: int
    late_share: float
    served: Any = None  # served.ServedPerformance: what was answered by flight for the trailing days' flights

    @property
    def passed(self) -> bool:
        """The day's verdict: the snapshot's test of the trailing ROC AUC against its floor passed
        (an undefined trailing ROC AUC has no test: no verdict, not degraded)."""
        return self.result.passed

    def summary_row(self) -> dict:
        return {"day": self.day, "roc_auc": round(self.result.metrics["roc_auc"], 3), "trailing_roc_auc": round(self.trailing.roc_auc, 3),
                "drop": round(self.trailing.drop, 3), "degraded": not self.passed}


def performance_days(days: list[str], labelled: pd.DataFrame, record_of: Callable, thresholds: PerformanceThresholds,
                     label: str, names: SnapshotNames, served_of: Callable | None = None) -> Iterator[DayPerformance]:
    """Each day's performance report, one day at a time. `labelled`: the labelled scored flights of
    the days' trailing windows; `record_of(version)`: the registered version (`ModelRecord`);
    `served_of(day, floor)`: what was served by flight for the day's trailing flights, judged
    (`served.ServedPerformance`; its ROC AUC is a figure of the snapshot, for the dashboard)."""
    for day in days:
        rows = labelled[labelled["partition_date"] == day]
        if rows.empty:
            raise DataProblem(f"partition {day}: no scored flight with a known arrival (tables predictions, flight_features.is_late)")
        version = day_version(rows, day)
        record = record_of(version)
        if record.evaluation_roc_auc is None:
            raise DataProblem(f"{record.label} has no evaluation ROC AUC (tag eval.test_roc_auc): "
                              "nothing to compare its live ROC AUC with")
        trailing = trailing_performance(labelled, day, version, thresholds.window_days, record.evaluation_roc_auc,
                                        thresholds.roc_auc_drop, label)
        served = served_of(day, trailing.floor) if served_of is not None else None
        figures = {names.trailing_roc_auc: trailing.roc_auc, names.evaluation_roc_auc: record.evaluation_roc_auc}
        if served is not None:
            figures[names.served_roc_auc] = served.roc_auc if served.judged else None
        result = classification_report(
            rows, label, labels=SnapshotLabels(day, (names.performance,), {"model_version": version}),
            figures=figures, floors={names.trailing_roc_auc: trailing.floor})
        yield DayPerformance(day, version, record.evaluation_roc_auc, trailing, result, len(rows), float(rows[label].mean()),
                             served)


@dataclass(frozen=True)
class ShadowComparison:
    """A shadow challenger against the champion on the labelled days both scored since it became
    the challenger (pooled): promote when it is ahead by the margin after `needed` days, drop
    when it is not; wait before that."""

    challenger: str
    days: int
    needed: int
    flights: int
    champion_roc_auc: float
    challenger_roc_auc: float
    margin: float

    @property
    def verdict(self) -> str:
        if self.days < self.needed:
            return "waiting"
        ahead = self.challenger_roc_auc - self.champion_roc_auc
        return "promote" if math.isfinite(ahead) and ahead >= self.margin else "drop"

    @property
    def reason(self) -> str:
        figures = (f"on {self.days} labelled day(s), {self.flights} flights: challenger v{self.challenger} ROC AUC "
                   f"{self.challenger_roc_auc:.4f} vs champion {self.champion_roc_auc:.4f} (margin {self.margin:.4f})")
        return {"waiting": f"waiting for {self.needed} labelled days; so far {figures}",
                "promote": f"beats the champion {figures}",
                "drop": f"does not beat the champion by the margin {figures}"}[self.verdict]


def shadow_comparison(labelled: pd.DataFrame, shadow: pd.DataFrame, challenger: str, needed: int, margin: float,
                      label: str) -> ShadowComparison:
    """`labelled`: the champion's scored, labelled rows (partition_date, row_number,
    probability_late, label) of the shadow days; `shadow`: the challenger's scores of them."""
    from sklearn.metrics import roc_auc_score

    both = labelled.merge(shadow[shadow["model_version"] == challenger][KEY + ["probability_late"]],
                          on=KEY, suffixes=("", "_challenger"), validate="one_to_one")

    def auc(column: str) -> float:
        return float(roc_auc_score(both[label], both[column])) if both[label].nunique() == 2 else float("nan")

    return ShadowComparison(challenger=challenger, days=int(both["partition_date"].nunique()), needed=needed,
                            flights=len(both), champion_roc_auc=auc("probability_late"),
                            challenger_roc_auc=auc("probability_late_challenger"), margin=margin)
