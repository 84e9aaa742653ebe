"""Evaluation logic (no Dagster): candidate, current champion and a simple baseline scored on
the same test rows, and the promotion decision with every reason."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from assets.training.logic import LABEL, TrainingSet
from resources.records import GateVerdict
from served_model.features import model_input

REPORTED = ("roc_auc", "pr_auc", "log_loss", "brier", "precision", "recall", "f1")


@dataclass(frozen=True)
class Metrics:
    """Quality of probabilities `p` against outcomes `y` at an operating threshold."""

    roc_auc: float
    pr_auc: float
    log_loss: float
    brier: float
    precision: float
    recall: float
    f1: float
    threshold: float
    rows: int
    late_share: float


def metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> Metrics:
    from sklearn.metrics import (
        average_precision_score,
        brier_score_loss,
        f1_score,
        log_loss,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    pred = (p >= threshold).astype(int)
    both = len(np.unique(y)) == 2
    return Metrics(
        roc_auc=float(roc_auc_score(y, p)) if both else float("nan"),
        pr_auc=float(average_precision_score(y, p)) if both else float("nan"),
        log_loss=float(log_loss(y, np.clip(p, 1e-6, 1 - 1e-6), labels=[0, 1])),
        brier=float(brier_score_loss(y, p)),
        precision=float(precision_score(y, pred, zero_division=0)),
        recall=float(recall_score(y, pred, zero_division=0)),
        f1=float(f1_score(y, pred, zero_division=0)),
        threshold=float(threshold),
        rows=int(len(y)),
        late_share=float(np.mean(y)),
    )


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict]:
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    rows = []
    for b in range(bins):
        m = which == b
        if m.any():
            rows.append({"bin": f"{edges[b]:.1f}-{edges[b + 1]:.1f}", "rows": int(m.sum()),
                         "mean_predicted": round(float(p[m].mean()), 4), "observed_late": round(float(y[m].mean()), 4)})
    return rows


def segment_metrics(frame: pd.DataFrame, p: np.ndarray, threshold: float, by: str) -> list[dict]:
    out = []
    for key, idx in frame.groupby(by).indices.items():
        m = metrics(frame[LABEL].to_numpy()[idx], p[idx], threshold)
        out.append({by: key, "rows": m.rows, "late_share": round(m.late_share, 3),
                    "roc_auc": round(m.roc_auc, 4), "f1": round(m.f1, 4)})
    return sorted(out, key=lambda r: -r["rows"])


def baseline_scores(train: pd.DataFrame, test: pd.DataFrame, prior_weight: float = 20.0) -> np.ndarray:
    """Historical late rate by route and scheduled hour on the train days, shrunk toward the
    route's rate and the overall rate when a cell has few flights."""
    overall = train[LABEL].mean()
    route = train.groupby("route")[LABEL].agg(["sum", "count"])
    route_rate = (route["sum"] + prior_weight * overall) / (route["count"] + prior_weight)
    cell = train.groupby(["route", "sched_hour"])[LABEL].agg(["sum", "count"]).reset_index()
    cell["prior"] = cell["route"].map(route_rate)
    cell["rate"] = (cell["sum"] + prior_weight * cell["prior"]) / (cell["count"] + prior_weight)
    scored = test[["route", "sched_hour"]].merge(cell[["route", "sched_hour", "rate"]], how="left", on=["route", "sched_hour"])
    fallback = test["route"].map(route_rate).fillna(overall).to_numpy()
    return np.where(scored["rate"].isna(), fallback, scored["rate"]).astype(float)


@dataclass(frozen=True)
class GatePolicy:
    """The promotion gate: an absolute floor, beat the baseline, a margin over the champion;
    a person may override it with a reason."""

    min_roc_auc: float = 0.65
    min_margin: float = 0.002
    force_promote: bool = False
    override_reason: str = ""


def decide(candidate: Metrics, champion: Metrics | None, baseline: Metrics, gate: GatePolicy) -> GateVerdict:
    """The promotion decision and every reason behind it."""
    reasons, ok = [], True
    c_auc = candidate.roc_auc
    if not np.isfinite(c_auc) or c_auc < gate.min_roc_auc:
        ok = False
        reasons.append(f"candidate ROC AUC {c_auc:.4f} is below the floor {gate.min_roc_auc:.4f}")
    else:
        reasons.append(f"candidate ROC AUC {c_auc:.4f} meets the floor {gate.min_roc_auc:.4f}")
    if c_auc <= baseline.roc_auc:
        ok = False
        reasons.append(f"candidate does not beat the baseline ({c_auc:.4f} <= {baseline.roc_auc:.4f})")
    else:
        reasons.append(f"candidate beats the baseline ({c_auc:.4f} > {baseline.roc_auc:.4f})")
    if champion is None:
        reasons.append("no champion yet: first deployment")
    elif c_auc < champion.roc_auc + gate.min_margin:
        ok = False
        reasons.append(
            f"candidate ROC AUC {c_auc:.4f} is not above the champion's {champion.roc_auc:.4f} "
            f"by the required margin {gate.min_margin:.4f} on the same rows"
        )
    else:
        reasons.append(f"candidate beats the champion by {c_auc - champion.roc_auc:+.4f} (margin {gate.min_margin:.4f})")
    if gate.force_promote:
        if not gate.override_reason.strip():
            raise ValueError("force_promote needs an override_reason")
        reasons.append(f"MANUAL OVERRIDE: promote regardless ({gate.override_reason.strip()})")
        ok = True
    return GateVerdict(promote=ok, reasons=reasons, overridden=gate.force_promote)


@dataclass(frozen=True)
class Evaluation:
    """What `model_evaluation` found; stored as a JSON artifact of the candidate's MLflow run."""

    candidate_version: str
    champion_version: str | None
    test_days: list[str]
    metrics: dict[str, Metrics]  # candidate, champion (if any), baseline
    verdict: GateVerdict
    calibration: list[dict] = field(default_factory=list)
    by_origin: list[dict] = field(default_factory=list)
    by_carrier: list[dict] = field(default_factory=list)
    roc_curve: dict = field(default_factory=dict)

    @property
    def candidate(self) -> Metrics:
        return self.metrics["candidate"]

    def as_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Evaluation:
        return cls(**{**data, "metrics": {k: Metrics(**m) for k, m in data["metrics"].items()},
                      "verdict": GateVerdict(**data["verdict"])})

    def mlflow_metrics(self) -> dict[str, float]:
        """`test_<model>_<metric>` of every finite figure, as logged on the candidate's run."""
        return {f"test_{name}_{k}": getattr(m, k) for name, m in self.metrics.items() for k in REPORTED
                if np.isfinite(getattr(m, k))}

    def table(self) -> list[dict]:
        return [{"model": k, **{x: round(v, 4) for x, v in asdict(m).items() if x != "rows"}} for k, m in self.metrics.items()]


def roc_points(y, p, n: int = 101) -> dict:
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y, p)
    grid = np.linspace(0, 1, n)
    return {"fpr": grid.tolist(), "tpr": np.interp(grid, fpr, tpr).tolist()}


def evaluate(ts: TrainingSet, candidate_version: str, candidate, threshold: float, champion_version: str | None,
             champion, champion_threshold: float, gate: GatePolicy) -> Evaluation:
    """Candidate, champion (if any) and the baseline on the window's test days, and the gate."""
    test, train = ts.split("test"), ts.split("train")
    y, X = test[LABEL].to_numpy(), model_input(test)
    p_candidate = candidate.predict_proba(X)[:, 1]
    scored = {"candidate": metrics(y, p_candidate, threshold)}
    if champion is not None:
        scored["champion"] = metrics(y, champion.predict_proba(X)[:, 1], champion_threshold)
    scored["baseline"] = metrics(y, baseline_scores(train, test), threshold)
    verdict = decide(scored["candidate"], scored.get("champion"), scored["baseline"], gate)
    return Evaluation(
        candidate_version=str(candidate_version), champion_version=champion_version, test_days=ts.window.splits["test"],
        metrics=scored, verdict=verdict, calibration=calibration_table(y, p_candidate),
        by_origin=segment_metrics(test, p_candidate, threshold, "origin"),
        by_carrier=segment_metrics(test, p_candidate, threshold, "carrier"),
        roc_curve=roc_points(y, p_candidate),
    )
