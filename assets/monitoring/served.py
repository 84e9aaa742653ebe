"""What the scoring server answered by flight, judged against what happened (no Dagster): each
`/predict` answer recorded with its flight's key (served_predictions) matched to that flight's
arrival in flight_features,

- pooled over the trailing days of the batch verdict and held to the same floor (the evaluation
  ROC AUC less FLIGHTS_ROC_AUC_DROP): `served_performance`;
- split by the version that answered, while a challenger is in promotion mode canary: the
  canary's ROC AUC on the flights it answered against the champion's on the flights the champion
  answered, the gate's margin deciding: `canary_comparison`.
"""

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


def _answers(served: pd.DataFrame) -> pd.DataFrame:
    extra = [c for c in ("model_version",) if c in served.columns]
    return served[SERVED_FLIGHT_KEY + ["probability_late", *extra]].astype({"flight": int})


def matched_answers(served: pd.DataFrame, outcomes: pd.DataFrame, label: str) -> pd.DataFrame:
    """Each answer by flight (`served`: served_predictions rows, SERVED_FLIGHT_KEY,
    probability_late and model_version) whose flight has a known arrival in `outcomes`
    (flight_features rows: carrier, flight, origin, sched_dep_ts, label), with that label."""
    known = outcomes[outcomes[label].notna()][["carrier", "flight", "origin", "sched_dep_ts", label]]
    known = known.rename(columns={"sched_dep_ts": "scheduled_departure"}).drop_duplicates(SERVED_FLIGHT_KEY)
    matched = _answers(served).merge(known.astype({"flight": int}), on=SERVED_FLIGHT_KEY, how="inner")
    return matched.astype({label: int})


def _roc_auc(y: pd.Series, p: pd.Series) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if y.nunique() == 2 else float("nan")


def served_performance(served: pd.DataFrame, outcomes: pd.DataFrame, floor: float, label: str) -> ServedPerformance:
    """`served`: served_predictions rows asked by flight (SERVED_FLIGHT_KEY, probability_late);
    `outcomes`: flight_features rows of the same days (carrier, flight, origin, sched_dep_ts, label)."""
    answers = _answers(served)
    matched = matched_answers(served, outcomes, label)
    y = matched[label]
    auc = _roc_auc(y, matched["probability_late"])
    return ServedPerformance(answers=len(answers), flights=len(answers.drop_duplicates(SERVED_FLIGHT_KEY)),
                             matched=len(matched), roc_auc=auc,
                             mean_probability=float(matched["probability_late"].mean()) if len(matched) else float("nan"),
                             late_share=float(y.mean()) if len(matched) else float("nan"), floor=floor)


@dataclass(frozen=True)
class CanaryComparison:
    """A canary challenger against the champion on live traffic: each one's ROC AUC on the
    flights it answered by flight since the challenger began (matched to their arrivals), over
    the labelled days since. After `needed` labelled days, with at least MIN_SERVED_ROWS matched
    answers on each side, the canary is promoted when it is ahead by the gate's margin and
    dropped when it is not; before that it waits."""

    challenger: str
    champion: str
    days: int  # labelled days since the challenger began
    needed: int
    champion_answers: int  # matched to an arrival
    canary_answers: int
    champion_roc_auc: float
    canary_roc_auc: float
    margin: float

    @property
    def enough(self) -> bool:
        return min(self.champion_answers, self.canary_answers) >= MIN_SERVED_ROWS

    @property
    def verdict(self) -> str:
        if self.days < self.needed or not self.enough:
            return "waiting"
        ahead = self.canary_roc_auc - self.champion_roc_auc
        return "promote" if math.isfinite(ahead) and ahead >= self.margin else "drop"

    @property
    def reason(self) -> str:
        figures = (f"on {self.days} labelled day(s) of live traffic: canary v{self.challenger} ROC AUC "
                   f"{self.canary_roc_auc:.4f} on the {self.canary_answers} flights it answered vs champion "
                   f"v{self.champion} {self.champion_roc_auc:.4f} on its {self.champion_answers} (margin {self.margin:.4f})")
        if self.verdict == "waiting":
            short = (f"; fewer than {MIN_SERVED_ROWS} answers matched to an arrival on a side"
                     if self.days >= self.needed else "")
            return f"waiting for {self.needed} labelled days{short}; so far {figures}"
        return {"promote": f"beats the champion {figures}",
                "drop": f"does not beat the champion by the margin {figures}"}[self.verdict]


def canary_comparison(served: pd.DataFrame, outcomes: pd.DataFrame, champion: str, challenger: str, days: int,
                      needed: int, margin: float, label: str) -> CanaryComparison:
    """`served`: the answers by flight for the flights of the canary's days (served_predictions
    rows with model_version); `outcomes`: flight_features rows of those days; `days`: how many
    of them are labelled."""
    matched = matched_answers(served, outcomes, label)
    arm = {v: matched[matched["model_version"].astype(str) == v] for v in (champion, challenger)}
    return CanaryComparison(challenger=challenger, champion=champion, days=days, needed=needed,
                            champion_answers=len(arm[champion]), canary_answers=len(arm[challenger]),
                            champion_roc_auc=_roc_auc(arm[champion][label], arm[champion]["probability_late"]),
                            canary_roc_auc=_roc_auc(arm[challenger][label], arm[challenger]["probability_late"]),
                            margin=margin)
