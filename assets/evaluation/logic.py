"""Evaluation logic (no Dagster): candidate, current champion and a simple baseline scored on
the same test rows, and the promotion decision with every reason."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from assets.training.calibration import calibration_error
from assets.training.logic import LABEL, TrainingSet
from resources.records import GateVerdict
from served_model.features import model_input

REPORTED = ("roc_auc", "pr_auc", "log_loss", "brier", "calibration_error", "precision", "recall", "f1")


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
    calibration_error: float = float("nan")  # expected calibration error, 10 bins (older evaluations: nan)


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
        calibration_error=calibration_error(y, p),
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
    """The promotion gate: an absolute floor, beat the baseline, a margin over the champion, and
    no segment (an origin, or a carrier with at least `segment_min_rows` test flights) worse than
    the champion by more than `segment_margin`; a person may override it with a reason."""

    min_roc_auc: float = 0.65
    min_margin: float = 0.002
    segment_margin: float = 0.02
    segment_min_rows: int = 1000
    force_promote: bool = False
    override_reason: str = ""


# the segments the gate guards: every origin; carriers with at least `segment_min_rows` test flights
GUARDED_SEGMENTS = ("origin", "carrier")


def segment_comparison(test: pd.DataFrame, p_candidate: np.ndarray, p_champion: np.ndarray, min_rows: int) -> list[dict]:
    """Candidate and champion ROC AUC on the same rows of each guarded segment (both classes
    present): every origin, and every carrier with at least `min_rows` test flights."""
    from sklearn.metrics import roc_auc_score

    y, out = test[LABEL].to_numpy(), []
    for by in GUARDED_SEGMENTS:
        for key, idx in sorted(test.groupby(by).indices.items()):
            if (by != "origin" and len(idx) < min_rows) or len(np.unique(y[idx])) < 2:
                continue
            c, k = float(roc_auc_score(y[idx], p_candidate[idx])), float(roc_auc_score(y[idx], p_champion[idx]))
            out.append({"segment": f"{by} {key}", "rows": int(len(idx)), "candidate_roc_auc": round(c, 4),
                        "champion_roc_auc": round(k, 4), "difference": round(c - k, 4)})
    return out


def decide(candidate: Metrics, champion: Metrics | None, baseline: Metrics, gate: GatePolicy,
           segments: list[dict] | None = None) -> GateVerdict:
    """The promotion decision and every reason behind it; `segments`: `segment_comparison`."""
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
    if champion is not None and segments is not None:
        worse = [s for s in segments if s["difference"] < -gate.segment_margin]
        for s in worse:
            ok = False
            reasons.append(f"segment {s['segment']}: candidate ROC AUC {s['candidate_roc_auc']:.4f} is "
                           f"{-s['difference']:.4f} below the champion's {s['champion_roc_auc']:.4f} on its {s['rows']} "
                           f"test flights (segment margin {gate.segment_margin:.4f})")
        if not worse:
            reasons.append(f"no segment worse than the champion by more than {gate.segment_margin:.4f} "
                           f"({len(segments)} guarded: every origin, carriers with >= {gate.segment_min_rows} test flights)")
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
    segments: list[dict] = field(default_factory=list)  # candidate vs champion per guarded segment
    importance: list[dict] = field(default_factory=list)  # permutation importance, candidate and champion
    scores_artifact: str = ""  # where the `ScoredTestDays` behind the model card's curves are ("": not kept, older evaluations)

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


# the test flights' outcomes and both models' probabilities, on the candidate's MLflow run beside
# the evaluation (evaluation/evaluation.json): what the model card's curves are drawn from
SCORES_ARTIFACT = "evaluation/test_scores.json"


@dataclass(frozen=True)
class ScoredTestDays:
    """The test flights' outcomes (1: late) and, row for row, the probabilities of the candidate
    and of the champion it is judged against (None: no champion yet): the model card's ROC,
    precision-recall and calibration curves are drawn from them. Stored as `SCORES_ARTIFACT`."""

    y: list[int]
    candidate: list[float]
    champion: list[float] | None = None

    @classmethod
    def of(cls, y: np.ndarray, p_candidate: np.ndarray, p_champion: np.ndarray | None = None) -> ScoredTestDays:
        def rounded(p):  # 6 digits: the curves and their AUCs unchanged (to 1e-5), a smaller artifact
            return np.round(np.asarray(p, dtype=float), 6).tolist()

        return cls(y=np.asarray(y, dtype=int).tolist(), candidate=rounded(p_candidate),
                   champion=None if p_champion is None else rounded(p_champion))

    def as_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> ScoredTestDays:
        return cls(**data)


# permutation importance: a fixed-seed sample of the test flights, and shuffles per feature
IMPORTANCE_ROWS = 2500
IMPORTANCE_REPEATS = 2


def roc_points(y, p, n: int = 101) -> dict:
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y, p)
    grid = np.linspace(0, 1, n)
    return {"fpr": grid.tolist(), "tpr": np.interp(grid, fpr, tpr).tolist()}


def permutation_importance_table(models: dict[str, object], test: pd.DataFrame, rows: int = IMPORTANCE_ROWS,
                                 repeats: int = IMPORTANCE_REPEATS, seed: int = 0) -> list[dict]:
    """Permutation importance on the test days: how much each model's ROC AUC drops when one
    feature's values are shuffled (mean of `repeats` shuffles, on the same fixed-seed sample of
    at most `rows` test flights for every model); one row per feature, sorted by the first
    model's importance."""
    from sklearn.inspection import permutation_importance

    sample = test.sample(n=min(rows, len(test)), random_state=seed) if len(test) > rows else test
    X, y = model_input(sample), sample[LABEL].to_numpy()
    if len(np.unique(y)) < 2:
        return []
    table = {c: {"feature": c} for c in X.columns}
    for name, model in models.items():
        # the classifier step on the prepared matrix: shuffling an encoded column shuffles the
        # category, and the encoding is done once instead of once per shuffle
        (_, prepare), (_, classifier) = model.steps[0], model.steps[-1]
        prepared = prepare.transform(X)
        result = permutation_importance(classifier, prepared, y, scoring="roc_auc", n_repeats=repeats, random_state=seed)
        for c, mean, std in zip(prepare.get_feature_names_out(), result.importances_mean, result.importances_std):
            table[c][name] = round(float(mean), 5)
            table[c][f"{name}_std"] = round(float(std), 5)
    first = next(iter(models))
    return sorted(table.values(), key=lambda r: -r[first])


def evaluate(ts: TrainingSet, candidate_version: str, candidate, threshold: float, champion_version: str | None,
             champion, champion_threshold: float, gate: GatePolicy, importance: bool = True) -> tuple[Evaluation, ScoredTestDays]:
    """Candidate, champion (if any) and the baseline on the window's test days, the segments the
    gate guards, permutation importance of both models, and the gate; with the test flights'
    outcomes and both models' probabilities (to store as `evaluation.scores_artifact`)."""
    test, train = ts.split("test"), ts.split("train")
    y, X = test[LABEL].to_numpy(), model_input(test)
    p_candidate = candidate.predict_proba(X)[:, 1]
    scored = {"candidate": metrics(y, p_candidate, threshold)}
    segments, p_champion = None, None
    if champion is not None:
        p_champion = champion.predict_proba(X)[:, 1]
        scored["champion"] = metrics(y, p_champion, champion_threshold)
        segments = segment_comparison(test, p_candidate, p_champion, gate.segment_min_rows)
    scored["baseline"] = metrics(y, baseline_scores(train, test), threshold)
    verdict = decide(scored["candidate"], scored.get("champion"), scored["baseline"], gate, segments)
    models = {"candidate": candidate, **({"champion": champion} if champion is not None else {})}
    evaluation = Evaluation(
        candidate_version=str(candidate_version), champion_version=champion_version, test_days=ts.window.splits["test"],
        metrics=scored, verdict=verdict, calibration=calibration_table(y, p_candidate),
        by_origin=segment_metrics(test, p_candidate, threshold, "origin"),
        by_carrier=segment_metrics(test, p_candidate, threshold, "carrier"),
        roc_curve=roc_points(y, p_candidate), segments=segments or [],
        importance=permutation_importance_table(models, test) if importance else [],
        scores_artifact=SCORES_ARTIFACT,
    )
    return evaluation, ScoredTestDays.of(y, p_candidate, p_champion)
