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
    return [roc, cal]


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
        f"- validation (threshold): {d['validation'][0]} … {d['validation'][-1]} ({len(d['validation'])} days)",
        f"- test (gate): {d['test'][0]} … {d['test'][-1]} ({len(d['test'])} days)",
        f"- rows: {evaluation.candidate.rows} labelled test flights; data versions per day in the MLflow run tag `data.versions`",
        "",
        "## Metrics on the test days",
        markdown_table(evaluation.table(), ["model", "roc_auc", "pr_auc", "log_loss", "brier", "precision", "recall",
                                            "f1", "threshold"]),
        "",
        "## Segments (candidate)",
        markdown_table(evaluation.by_origin, ["origin", *segment]),
        "",
        markdown_table(evaluation.by_carrier, ["carrier", *segment]),
        "",
        "## Calibration (candidate)",
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
