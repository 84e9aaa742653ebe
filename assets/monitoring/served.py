"""What the scoring server answered by flight, judged against what happened (no Dagster): each
`/predict` answer recorded with its flight's key (served_predictions) matched to that flight's
arrival in flight_features, pooled over the trailing days of the batch verdict and held to the
same floor (the evaluation ROC AUC less FLIGHTS_ROC_AUC_DROP)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from assets.monitoring.logic import MIN_SERVED_ROWS

SERVED_FLIGHT_KEY = ["carrier", "flight", "origin", "scheduled_departure"]


@dataclass(frozen=True)
class ServedPerformance:
    """What the scoring server answered by flight (`/predict`) for the trailing days' flights,
    judged against their arrivals: every answer matched to its flight's outcome by the flight's
    key, pooled over the same trailing days as the batch verdict and held to the same floor."""

    answers: int  # /predict answers for flights of the trailing days
    flights: int  # distinct flights among them
    matched: int  # answers whose flight has a known arrival
    roc_auc: float  # NaN: not judged
    mean_probability: float
    late_share: float
    floor: float

    @property
    def judged(self) -> bool:
        return self.matched >= MIN_SERVED_ROWS and math.isfinite(self.roc_auc)

    @property
    def passed(self) -> bool:
        return not self.judged or self.roc_auc > self.floor

    @property
    def said(self) -> str:
        if not self.judged:
            return f"not judged: {self.matched} served flights with a known arrival (< {MIN_SERVED_ROWS})"
        return (f"served ROC AUC {self.roc_auc:.4f} over {self.matched} answers ({self.flights} flights), "
                f"floor {self.floor:.4f}: {'ok' if self.passed else 'degraded'}")


def served_performance(served: pd.DataFrame, outcomes: pd.DataFrame, floor: float, label: str) -> ServedPerformance:
    """`served`: served_predictions rows asked by flight (SERVED_FLIGHT_KEY, probability_late);
    `outcomes`: flight_features rows of the same days (carrier, flight, origin, sched_dep_ts, label)."""
    from sklearn.metrics import roc_auc_score

    known = outcomes[outcomes[label].notna()][["carrier", "flight", "origin", "sched_dep_ts", label]]
    known = known.rename(columns={"sched_dep_ts": "scheduled_departure"}).drop_duplicates(SERVED_FLIGHT_KEY)
    answers = served[SERVED_FLIGHT_KEY + ["probability_late"]].astype({"flight": int})
    matched = answers.merge(known.astype({"flight": int}), on=SERVED_FLIGHT_KEY, how="inner")
    y = matched[label].astype(int)
    auc = float(roc_auc_score(y, matched["probability_late"])) if y.nunique() == 2 else float("nan")
    return ServedPerformance(answers=len(answers), flights=len(answers.drop_duplicates(SERVED_FLIGHT_KEY)),
                             matched=len(matched), roc_auc=auc,
                             mean_probability=float(matched["probability_late"].mean()) if len(matched) else float("nan"),
                             late_share=float(y.mean()) if len(matched) else float("nan"), floor=floor)
