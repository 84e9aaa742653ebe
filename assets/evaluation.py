"""Evaluation: candidate, current champion and a simple baseline scored on the same test rows,
and the promotion decision with every reason (`model_evaluation`)."""

import time

import numpy as np
import pandas as pd
from dagster import AssetExecutionContext, Config, MetadataValue, Output, asset
from pydantic import Field

from assets.partitions import markdown_table
from assets.training import LABEL, TrainingSet, model_input
from resources.retries import STORE_RETRY_POLICY, DataFailure
from resources.registry import CHAMPION, ModelRegistry


def metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    from sklearn.metrics import (
        average_precision_score, brier_score_loss, f1_score, log_loss, precision_score, recall_score, roc_auc_score,
    )

    pred = (p >= threshold).astype(int)
    both = len(np.unique(y)) == 2
    return {
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
        "log_loss": float(log_loss(y, np.clip(p, 1e-6, 1 - 1e-6), labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "f1": float(f1_score(y, pred, zero_division=0)),
        "threshold": float(threshold),
        "rows": int(len(y)),
        "late_share": float(np.mean(y)),
    }


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
        y = frame[LABEL].to_numpy()[idx]
        m = metrics(y, p[idx], threshold)
        out.append({by: key, "rows": m["rows"], "late_share": round(m["late_share"], 3),
                    "roc_auc": round(m["roc_auc"], 4), "f1": round(m["f1"], 4)})
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


class GateConfig(Config):
    min_roc_auc: float = Field(default=0.65, description="Absolute floor of the candidate's test ROC AUC.")
    min_margin: float = Field(default=0.002, description="Required ROC AUC margin over the champion on the same rows.")
    force_promote: bool = Field(default=False, description="Manual override: promote whatever the gate says.")
    override_reason: str = Field(default="", description="Why the override was used (required with force_promote).")


def decide(candidate: dict, champion: dict | None, baseline: dict, gate: GateConfig) -> dict:
    """The promotion decision and every reason behind it."""
    reasons, ok = [], True
    c_auc = candidate["roc_auc"]
    if not np.isfinite(c_auc) or c_auc < gate.min_roc_auc:
        ok = False
        reasons.append(f"candidate ROC AUC {c_auc:.4f} is below the floor {gate.min_roc_auc:.4f}")
    else:
        reasons.append(f"candidate ROC AUC {c_auc:.4f} meets the floor {gate.min_roc_auc:.4f}")
    if c_auc <= baseline["roc_auc"]:
        ok = False
        reasons.append(f"candidate does not beat the baseline ({c_auc:.4f} <= {baseline['roc_auc']:.4f})")
    else:
        reasons.append(f"candidate beats the baseline ({c_auc:.4f} > {baseline['roc_auc']:.4f})")
    if champion is None:
        reasons.append("no champion yet: first deployment")
    elif c_auc < champion["roc_auc"] + gate.min_margin:
        ok = False
        reasons.append(
            f"candidate ROC AUC {c_auc:.4f} is not above the champion's {champion['roc_auc']:.4f} "
            f"by the required margin {gate.min_margin:.4f} on the same rows"
        )
    else:
        reasons.append(
            f"candidate beats the champion by {c_auc - champion['roc_auc']:+.4f} (margin {gate.min_margin:.4f})"
        )
    if gate.force_promote:
        if not gate.override_reason.strip():
            raise ValueError("force_promote needs an override_reason")
        reasons.append(f"MANUAL OVERRIDE: promote regardless ({gate.override_reason.strip()})")
        ok = True
    return {"promote": ok, "reasons": reasons, "overridden": gate.force_promote}


@asset(
    retry_policy=STORE_RETRY_POLICY,
    group_name="training",
    kinds={"sklearn"},
    owners=["team:ml-platform"],
    tags={"stage": "evaluation"},
    description="Candidate, current champion and a baseline (historical late rate by route and hour) "
    "scored on the same test days: ROC AUC, PR AUC, log loss, Brier, precision/recall/F1 at the "
    "operating threshold, calibration, per origin and per carrier; and the promotion decision.",
)
def model_evaluation(
    context: AssetExecutionContext,
    config: GateConfig,
    training_set: TrainingSet,
    candidate_model: dict,
    model_registry: ModelRegistry,
):
    test, train = training_set.split("test"), training_set.split("train")
    y = test[LABEL].to_numpy()
    X = model_input(test)
    candidate = model_registry.load(candidate_model["version"])  # what is registered is what is judged
    threshold = candidate_model["threshold"]
    p_candidate = candidate.predict_proba(X)[:, 1]
    results = {"candidate": metrics(y, p_candidate, threshold)}

    champion_version = model_registry.version_by_alias(CHAMPION)
    champion = None
    if champion_version is not None:
        try:
            champion_model = model_registry.load(champion_version.version)
        except RuntimeError as exc:
            raise DataFailure(f"the current champion cannot be evaluated, nothing changes: {exc}") from exc
        champion_threshold = float(champion_version.tags.get("threshold", 0.5))
        results["champion"] = metrics(y, champion_model.predict_proba(X)[:, 1], champion_threshold)
        champion = results["champion"]
    results["baseline"] = metrics(y, baseline_scores(train, test), threshold)
    try:
        decision = decide(results["candidate"], champion, results["baseline"], config)
    except ValueError as exc:
        raise DataFailure(str(exc)) from exc

    evaluation = {
        "candidate_version": candidate_model["version"],
        "candidate_run_id": candidate_model["run_id"],
        "champion_version": None if champion_version is None else champion_version.version,
        "test_days": training_set.days["test"],
        "metrics": results,
        "calibration": calibration_table(y, p_candidate),
        "by_origin": segment_metrics(test, p_candidate, threshold, "origin"),
        "by_carrier": segment_metrics(test, p_candidate, threshold, "carrier"),
        "decision": decision,
        "roc_curve": _roc_points(y, p_candidate),
    }
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    model_registry.client.log_batch(candidate_model["run_id"], metrics=[
        Metric(f"test_{name}_{k}", float(m[k]), now, 0)
        for name, m in results.items()
        for k in ("roc_auc", "pr_auc", "log_loss", "brier", "precision", "recall", "f1") if np.isfinite(m[k])
    ])
    table = [{"model": k, **{m: round(v, 4) for m, v in r.items() if m not in ("rows",)}} for k, r in results.items()]
    return Output(
        evaluation,
        metadata={
            "decision": MetadataValue.text("PROMOTE" if decision["promote"] else "KEEP CHAMPION"),
            "reasons": MetadataValue.md("\n".join(f"- {r}" for r in decision["reasons"])),
            "metrics": MetadataValue.md(markdown_table(table, ["model", "roc_auc", "pr_auc", "log_loss", "brier", "precision", "recall", "f1", "threshold"])),
            "candidate_roc_auc": MetadataValue.float(results["candidate"]["roc_auc"]),
            "test_days": MetadataValue.text(f"{training_set.days['test'][0]} … {training_set.days['test'][-1]}"),
            "calibration": MetadataValue.md(markdown_table(evaluation["calibration"], ["bin", "rows", "mean_predicted", "observed_late"])),
            "by_origin": MetadataValue.md(markdown_table(evaluation["by_origin"], ["origin", "rows", "late_share", "roc_auc", "f1"])),
            "by_carrier": MetadataValue.md(markdown_table(evaluation["by_carrier"], ["carrier", "rows", "late_share", "roc_auc", "f1"])),
        },
    )


def _roc_points(y, p, n: int = 101):
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y, p)
    grid = np.linspace(0, 1, n)
    return {"fpr": grid.tolist(), "tpr": np.interp(grid, fpr, tpr).tolist()}
