"""After a promotion, the new champion against the one it replaced, on the same flights (no
Dagster): the rollback watch.

For its first FLIGHTS_ROLLBACK_WATCH_DAYS labelled days a champion that came by the gate or an
approval is scored beside the `previous` champion (batch scoring writes the previous one's scores
to `shadow_predictions`). On those days, pooled, both ROC AUCs are taken on the same flights and
the new one is rolled back when it is worse by more than a margin.

The margin is not a fixed number: it is the noise of the difference on those very flights, the
one-sided 95 % bound of a paired bootstrap (flights resampled with replacement, both models'
scores kept together, CONFIDENCE, RESAMPLES), and never less than the gate's own margin. A
champion is rolled back only when even the bootstrap's most favourable 95 % of outcomes has it
behind, and behind by more than the difference the gate requires to promote: a difference that
noise can explain never rolls a model back.

Resampled are flights, not days: with 3 days a day-block bootstrap would have three blocks.
Flights of one day share weather and congestion, so the interval is somewhat narrower than a
day-aware one; the gate margin as a floor and the one-sided 95 % keep it conservative.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from assets.monitoring.logic import KEY

CONFIDENCE = 0.95
RESAMPLES = 1000
CHUNK = 100  # resamples ranked at once (memory: CHUNK x flights)


def _roc_auc_rows(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """ROC AUC of each row (Mann-Whitney, ties counted half): `y` 0/1 and `p` of shape (rows, n)."""
    from scipy.stats import rankdata

    ranks = rankdata(p, axis=1)
    positives = y.sum(axis=1)
    negatives = y.shape[1] - positives
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((ranks * y).sum(axis=1) - positives * (positives + 1) / 2) / (positives * negatives)


def paired_bootstrap(y: np.ndarray, new: np.ndarray, old: np.ndarray, resamples: int = RESAMPLES,
                     seed: int = 0) -> np.ndarray:
    """The ROC AUC difference new - old on `resamples` resamples of the flights (each resample
    the same flights for both models)."""
    rng = np.random.default_rng(seed)
    n, out = len(y), []
    for start in range(0, resamples, CHUNK):
        idx = rng.integers(0, n, size=(min(CHUNK, resamples - start), n))
        ys = y[idx]
        out.append(_roc_auc_rows(ys, new[idx]) - _roc_auc_rows(ys, old[idx]))
    diffs = np.concatenate(out)
    return diffs[np.isfinite(diffs)]


@dataclass(frozen=True)
class RollbackWatch:
    """The champion against the version it replaced on the same labelled flights of its first
    watched days: `rollback` when it is behind by more than `margin` after `needed` days."""

    champion: str
    previous: str
    days: int
    needed: int
    flights: int
    champion_roc_auc: float
    previous_roc_auc: float
    noise: float  # the one-sided CONFIDENCE bound of the paired bootstrap, less the difference (NaN: not computed yet)
    gate_margin: float

    @property
    def difference(self) -> float:
        return self.champion_roc_auc - self.previous_roc_auc

    @property
    def margin(self) -> float:
        return max(self.noise, self.gate_margin) if math.isfinite(self.noise) else self.gate_margin

    @property
    def verdict(self) -> str:
        if self.days < self.needed or not math.isfinite(self.difference):
            return "waiting"
        return "rollback" if self.difference < -self.margin else "keep"

    @property
    def reason(self) -> str:
        figures = (f"v{self.champion} ROC AUC {self.champion_roc_auc:.4f} vs v{self.previous} {self.previous_roc_auc:.4f} "
                   f"on the same {self.flights} flights of {self.days} labelled day(s): {self.difference:+.4f}")
        if self.verdict == "waiting":
            return f"watching for {self.needed} labelled days; so far {figures}"
        how = (f"margin {self.margin:.4f}: the larger of the paired bootstrap's one-sided {CONFIDENCE:.0%} noise "
               f"({self.noise:.4f}, {RESAMPLES} resamples) and the gate's margin ({self.gate_margin:.4f})")
        if self.verdict == "rollback":
            return f"worse than the champion it replaced beyond the noise: {figures}; {how}"
        return f"not worse than the champion it replaced beyond the noise: {figures}; {how}"


def rollback_watch(labelled: pd.DataFrame, shadow: pd.DataFrame, champion: str, previous: str, needed: int,
                   gate_margin: float, label: str, resamples: int = RESAMPLES) -> RollbackWatch:
    """`labelled`: the champion's scored, labelled rows (partition_date, row_number,
    probability_late, label) of the watched days; `shadow`: shadow_predictions rows of those days
    (the previous champion's among them, by model_version)."""
    both = labelled.merge(shadow[shadow["model_version"].astype(str) == previous][KEY + ["probability_late"]],
                          on=KEY, suffixes=("", "_previous"), validate="one_to_one")
    days = int(both["partition_date"].nunique())
    y = both[label].to_numpy(dtype=np.int8)
    new, old = both["probability_late"].to_numpy(), both["probability_late_previous"].to_numpy()
    two_classes = len(np.unique(y)) == 2
    auc_new = float(_roc_auc_rows(y[None, :], new[None, :])[0]) if two_classes else float("nan")
    auc_old = float(_roc_auc_rows(y[None, :], old[None, :])[0]) if two_classes else float("nan")
    noise = float("nan")
    if days >= needed and two_classes:  # the bootstrap only where a verdict is given
        upper = float(np.quantile(paired_bootstrap(y, new, old, resamples), CONFIDENCE))
        noise = max(0.0, upper - (auc_new - auc_old))
    return RollbackWatch(champion=champion, previous=previous, days=days, needed=needed, flights=len(both),
                         champion_roc_auc=auc_new, previous_roc_auc=auc_old, noise=noise, gate_margin=gate_margin)
