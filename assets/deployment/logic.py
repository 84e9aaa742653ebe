"""Deployment logic (no Dagster): the model card of a candidate and its plots."""

from __future__ import annotations

from pathlib import Path

from assets.common import markdown_table
from assets.evaluation.logic import Evaluation
from resources.records import ModelRecord

CARD_FILE = "model_card.md"


def plots(evaluation: Evaluation, folder: Path) -> list[Path]:
    """ROC curve and calibration of the candidate on the test days, as PNG files in `folder`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    roc = folder / "roc_curve.png"
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot(evaluation.roc_curve["fpr"], evaluation.roc_curve["tpr"], label="candidate")
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate",
           title=f"ROC, test days (AUC {evaluation.candidate.roc_auc:.3f})")
    fig.tight_layout()
    fig.savefig(roc, dpi=90)
    plt.close(fig)
    cal = folder / "calibration.png"
    fig, ax = plt.subplots(figsize=(4, 4))
    rows = evaluation.calibration
    ax.plot([r["mean_predicted"] for r in rows], [r["observed_late"] for r in rows], "o-")
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.set(xlabel="mean predicted probability", ylabel="observed late share", title="Calibration, test days")
    fig.tight_layout()
    fig.savefig(cal, dpi=90)
    plt.close(fig)
    return [roc, cal, *([importance_plot(evaluation, folder, plt)] if evaluation.importance else [])]


def importance_plot(evaluation: Evaluation, folder: Path, plt, top: int = 15) -> Path:
    """Permutation importance of the candidate's `top` features on the test days, beside the
    previous champion's on the same rows."""
    import numpy as np

    rows = evaluation.importance[:top][::-1]
    path = folder / IMPORTANCE_PLOT
    y = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(6, 0.32 * len(rows) + 1.2))
    has_champion = any("champion" in r for r in rows)
    height = 0.4 if has_champion else 0.7
    ax.barh(y + (height / 2 if has_champion else 0), [r["candidate"] for r in rows], height=height,
            xerr=[r["candidate_std"] for r in rows], label=f"candidate v{evaluation.candidate_version}")
    if has_champion:
        ax.barh(y - height / 2, [r.get("champion", 0.0) for r in rows], height=height,
                xerr=[r.get("champion_std", 0.0) for r in rows], label=f"champion v{evaluation.champion_version}")
    ax.set_yticks(y, [r["feature"] for r in rows], fontsize=8)
    ax.set(xlabel="ROC AUC drop when the feature is shuffled", title="Permutation importance, test days")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


IMPORTANCE_PLOT = "permutation_importance.png"


def _training_lines(candidate: ModelRecord) -> list[str]:
    p = candidate.model_params
    if not p:
        return ["- recorded before the search existed: see the MLflow run's params"]
    hyper = ", ".join(f"{k}={p[k]}" for k in ("learning_rate", "max_iter", "max_leaf_nodes", "min_samples_leaf",
                                              "l2_regularization", "random_state") if k in p)
    return [f"- training window chosen on the validation days: {p.get('train_days')} days from {p.get('train_from')}",
            f"- hyperparameters: {hyper}",
            f"- calibration: {p.get('calibration', 'none')} (fitted on the validation days; applied only if it lowers "
            f"log loss on the test days)",
            "- every trial of the search: the nested runs of the MLflow run"]


def model_card(candidate: ModelRecord, evaluation: Evaluation, decision: str, dagster_run_id: str) -> str:
    d = candidate.window.splits
    segment = ["rows", "late_share", "roc_auc", "f1"]
    lines = [
        f"# Model card: {candidate.label}",
        "",
        f"**Decision:** {decision}",
        "",
        *[f"- {r}" for r in evaluation.verdict.reasons],
        "",
        "## Task",
        "Predict at scheduled departure whether a flight from EWR, JFK or LGA arrives 15+ minutes late. "
        "Features use only information known at scheduled departure.",
        "",
        "## Data",
        f"- train: {d['train'][0]} … {d['train'][-1]} ({len(d['train'])} days)",
        f"- validation (training window, hyperparameters, calibration, threshold): {d['validation'][0]} … {d['validation'][-1]} ({len(d['validation'])} days)",
        f"- test (gate): {d['test'][0]} … {d['test'][-1]} ({len(d['test'])} days)",
        f"- rows: {evaluation.candidate.rows} labelled test flights; data versions per day in the MLflow run tag `data.versions`",
        "",
        "## Metrics on the test days",
        markdown_table(evaluation.table(), ["model", "roc_auc", "pr_auc", "log_loss", "brier", "precision", "recall",
                                            "f1", "threshold"]),
        "",
        "## Training",
        *_training_lines(candidate),
        "",
        "## Segments the gate guards (candidate vs champion, same test flights)",
        markdown_table(evaluation.segments, ["segment", "rows", "candidate_roc_auc", "champion_roc_auc", "difference"])
        if evaluation.segments else "No champion: no segment compared.",
        "",
        "## Permutation importance on the test days (ROC AUC drop when shuffled; top 15)",
        markdown_table(evaluation.importance[:15], ["feature", "candidate", "candidate_std",
                                                    *(["champion", "champion_std"] if evaluation.champion_version else [])])
        if evaluation.importance else "Not computed.",
        "",
        f"![Permutation importance]({IMPORTANCE_PLOT})" if evaluation.importance else "",
        "",
        "## Segments (candidate)",
        markdown_table(evaluation.by_origin, ["origin", *segment]),
        "",
        markdown_table(evaluation.by_carrier, ["carrier", *segment]),
        "",
        f"## Calibration (candidate; applied: {candidate.model_params.get('calibration', 'none')}, calibration error "
        f"{evaluation.candidate.calibration_error:.4f})",
        markdown_table(evaluation.calibration, ["bin", "rows", "mean_predicted", "observed_late"]),
        "",
        "![ROC curve](roc_curve.png)  ![Calibration](calibration.png)",
        "",
        "## Lineage",
        f"- MLflow run: `{candidate.run_id}`",
        f"- Dagster run: `{dagster_run_id}`",
        f"- trigger: {candidate.trigger.kind}" + (f" ({candidate.trigger.reason})" if candidate.trigger.reason else ""),
        f"- previous champion: {evaluation.champion_version or 'none'}",
    ]
    return "\n".join(lines)
