"""Monitoring logic (no Dagster): the columns watched for drift, a model's drift reference and
calibrated thresholds, and the verdicts of a day (dataset drift, degraded performance).

Evidently itself is wrapped in assets/monitoring/reports.py."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from assets.common import days_ending
from assets.monitoring.reports import calibrated_thresholds
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


def atomic_write(path: Path, write) -> Path:
    """Write through a temporary file and rename: a failed run leaves no half-written report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    tmp.replace(path)
    return path


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


@dataclass(frozen=True)
class TrailingPerformance:
    """A model's ROC AUC over the trailing labelled days it scored, against its evaluation ROC AUC."""

    roc_auc: float  # NaN when the pooled rows hold one class
    drop: float
    degraded: bool
    days: int
    flights: int
    first_day: str


def trailing_performance(labelled: pd.DataFrame, day: str, version: str, window_days: int,
                         evaluation_roc_auc: float, drop_threshold: float, label: str) -> TrailingPerformance:
    from sklearn.metrics import roc_auc_score

    pooled = labelled[labelled["partition_date"].isin(trailing_days(day, window_days))
                      & (labelled["model_version"] == version)]
    auc = float(roc_auc_score(pooled[label], pooled["probability_late"])) if pooled[label].nunique() == 2 else float("nan")
    drop = evaluation_roc_auc - auc
    return TrailingPerformance(roc_auc=auc, drop=drop, degraded=bool(drop >= drop_threshold),  # NaN is never a verdict
                               days=pooled["partition_date"].nunique(), flights=len(pooled),
                               first_day=str(pooled["partition_date"].min()))


def rounded(value: float, digits: int = 4) -> float | None:
    """A figure for a report, or None when it is undefined (e.g. ROC AUC of a one-class day)."""
    return round(value, digits) if math.isfinite(value) else None


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
