"""Deployment logic (no Dagster): the model card of a candidate and its plots."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from assets.common import markdown_table
from assets.evaluation.logic import IMPORTANCE_REPEATS, IMPORTANCE_ROWS, Evaluation, ScoredTestDays
from resources.records import ModelRecord
from resources.settings import settings

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CARD_FILE = "model_card.md"


# the card's figures, in the card's folder on the MLflow run (the card links to them by these names)
ROC_PLOT = "roc_curve.png"
PRECISION_RECALL_PLOT = "precision_recall.png"
CALIBRATION_PLOT = "calibration.png"
IMPORTANCE_PLOT = "permutation_importance.png"
PLOT_TITLES = {ROC_PLOT: "ROC curve", PRECISION_RECALL_PLOT: "Precision-recall", CALIBRATION_PLOT: "Calibration",
               IMPORTANCE_PLOT: "Permutation importance"}
COLORS = {"candidate": "tab:blue", "champion": "tab:orange"}
DPI = 110


def challenger_waits(mode: str) -> str:
    """What a challenger of promotion mode `mode` waits for (the model card, the alert)."""
    s = settings()
    return {"approve": "waiting for approval: approve_challenger_job or reject_challenger_job",
            "shadow": f"scoring every new day beside the champion for {s.shadow_days} labelled days",
            "canary": f"answering {s.canary_share:.0%} of the flights asked by flight (/predict; chosen by a hash of "
                      f"the flight key) for {s.canary_days} labelled days, then promoted or dropped on the flights "
                      "each version answered"}.get(mode, mode)


@dataclass(frozen=True)
class CardPlot:
    """One figure of the model card, saved as `path`; `drawn`: what it draws of each model
    (`candidate`, and `champion` when there is one): the scikit-learn display of a curve, or the
    bars of the importance plot."""

    path: Path
    figure: Figure
    drawn: dict[str, object]


def _models(evaluation: Evaluation, scores: ScoredTestDays) -> list[tuple[str, str, np.ndarray]]:
    """(key, legend name, probabilities) of the candidate, then of the champion when it was scored."""
    out = [("candidate", f"candidate v{evaluation.candidate_version}", np.asarray(scores.candidate))]
    if scores.champion is not None:
        out.append(("champion", f"champion v{evaluation.champion_version}", np.asarray(scores.champion)))
    return out


def _compared(evaluation: Evaluation, scores: ScoredTestDays) -> str:
    if scores.champion is None:
        return f"candidate v{evaluation.candidate_version} alone: no champion yet"
    return f"candidate v{evaluation.candidate_version} vs champion v{evaluation.champion_version}, same {len(scores.y):,} flights"


def _legend(ax, loc: str) -> None:
    """The models first, in drawing order, then the reference line (chance level, perfectly calibrated)."""
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: (labels[i].startswith(("Chance", "Perfectly")), i))
    ax.legend([handles[i] for i in order], [labels[i] for i in order], loc=loc, fontsize=9)


def _save(fig: Figure, folder: Path, name: str, drawn: dict[str, object]) -> CardPlot:
    path = folder / name
    fig.savefig(path, dpi=DPI)
    return CardPlot(path, fig, drawn)


def roc_plot(evaluation: Evaluation, scores: ScoredTestDays, folder: Path) -> CardPlot:
    """ROC curves of the candidate and of the champion on the same test flights."""
    from matplotlib.figure import Figure
    from sklearn.metrics import RocCurveDisplay

    fig = Figure(figsize=(5.6, 5.6), layout="constrained")
    ax = fig.subplots()
    y, drawn = np.asarray(scores.y), {}
    for i, (key, name, p) in enumerate(_models(evaluation, scores)):
        drawn[key] = RocCurveDisplay.from_predictions(y, p, name=name, ax=ax, plot_chance_level=i == 0)
        # four digits, as the card's metrics table: the gate's margin over the champion is 0.002
        drawn[key].line_.set(color=COLORS[key], label=f"{name} (AUC {drawn[key].roc_auc:.4f})")
    ax.set(xlabel="false positive rate (on-time flights flagged)", ylabel="true positive rate (late flights caught)")
    ax.set_title(f"ROC, test days\n{_compared(evaluation, scores)}", fontsize=10)
    ax.grid(alpha=0.3)
    _legend(ax, "lower right")
    return _save(fig, folder, ROC_PLOT, drawn)


def precision_recall_plot(evaluation: Evaluation, scores: ScoredTestDays, folder: Path) -> CardPlot:
    """Precision-recall curves of the candidate and of the champion on the same test flights, each
    with its operating threshold marked; late flights are the minority, the chance level is their
    share."""
    from matplotlib.figure import Figure
    from sklearn.metrics import PrecisionRecallDisplay

    fig = Figure(figsize=(5.6, 5.6), layout="constrained")
    ax = fig.subplots()
    y, drawn = np.asarray(scores.y), {}
    for i, (key, name, p) in enumerate(_models(evaluation, scores)):
        drawn[key] = PrecisionRecallDisplay.from_predictions(y, p, name=name, ax=ax, plot_chance_level=i == 0)
        drawn[key].line_.set(color=COLORS[key], label=f"{name} (AP {drawn[key].average_precision:.4f})")
    for key in drawn:  # the operating points, as the card's metrics table reports them
        m = evaluation.metrics[key]
        ax.plot([m.recall], [m.precision], "o", color=COLORS[key], markeredgecolor="black",
                label=f"{key} at its threshold {m.threshold:.2f} (F1 {m.f1:.3f})")
    ax.set(xlabel="recall (late flights caught)", ylabel="precision (flagged flights that are late)")
    ax.set_title(f"Precision-recall, test days\n{_compared(evaluation, scores)}", fontsize=10)
    ax.grid(alpha=0.3)
    _legend(ax, "lower left")
    return _save(fig, folder, PRECISION_RECALL_PLOT, drawn)


def calibration_plot(evaluation: Evaluation, scores: ScoredTestDays, folder: Path, bins: int = 10) -> CardPlot:
    """Reliability curves (the card's 10 equal-width bins) of the candidate and of the champion on
    the same test flights, and below them how their probabilities are spread."""
    from matplotlib.figure import Figure
    from sklearn.calibration import CalibrationDisplay

    fig = Figure(figsize=(5.6, 6.6), layout="constrained")
    ax, spread = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    y, drawn = np.asarray(scores.y), {}
    for i, (key, name, p) in enumerate(_models(evaluation, scores)):
        error = evaluation.metrics[key].calibration_error
        drawn[key] = CalibrationDisplay.from_predictions(y, p, n_bins=bins, strategy="uniform", ax=ax, ref_line=i == 0,
                                                         name=f"{name} (calibration error {error:.3f})", color=COLORS[key])
        spread.hist(p, bins=np.linspace(0, 1, 2 * bins + 1), histtype="step", linewidth=1.5, color=COLORS[key])
    ax.set(xlabel="", ylabel="observed late share", xlim=(0, 1), ylim=(0, 1))
    ax.set_title(f"Calibration, test days ({bins} bins)\n{_compared(evaluation, scores)}", fontsize=10)
    ax.grid(alpha=0.3)
    _legend(ax, "upper left")
    spread.set(xlabel="predicted probability of a late arrival", ylabel="flights")
    spread.grid(alpha=0.3)
    return _save(fig, folder, CALIBRATION_PLOT, drawn)


def importance_plot(evaluation: Evaluation, folder: Path, top: int = 15) -> CardPlot:
    """Permutation importance of the candidate's `top` features on the test days, beside the
    champion's on the same rows. Drawn with matplotlib bars: scikit-learn has no display for
    permutation importance (sklearn.inspection has PartialDependenceDisplay and
    DecisionBoundaryDisplay only)."""
    from matplotlib.figure import Figure

    rows = evaluation.importance[:top][::-1]  # the most important at the top
    has_champion = any("champion" in r for r in rows)
    y = np.arange(len(rows))
    fig = Figure(figsize=(8, 0.42 * len(rows) + 1.8), layout="constrained")
    ax = fig.subplots()
    height = 0.4 if has_champion else 0.6
    bars = {"candidate": [r["candidate"] for r in rows], **({"champion": [r.get("champion", 0.0) for r in rows]} if has_champion else {})}
    drawn = {}
    for key, values in bars.items():
        offset = (height / 2 if key == "candidate" else -height / 2) if has_champion else 0.0
        version = evaluation.candidate_version if key == "candidate" else evaluation.champion_version
        drawn[key] = ax.barh(y + offset, values, height=height, color=COLORS[key], label=f"{key} v{version}",
                             xerr=[r.get(f"{key}_std", 0.0) for r in rows], error_kw={"ecolor": "dimgrey", "capsize": 2, "linewidth": 1})
    ax.set_yticks(y, [r["feature"] for r in rows], fontsize=9)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.grid(axis="x", alpha=0.3)
    ax.set_xlabel(f"ROC AUC drop when the feature is shuffled\n(mean of {IMPORTANCE_REPEATS} shuffles of at most "
                  f"{IMPORTANCE_ROWS:,} test flights; whisker: ±1 std)", fontsize=9)
    compared = (f"candidate v{evaluation.candidate_version} vs champion v{evaluation.champion_version}, same flights"
                if has_champion else f"candidate v{evaluation.candidate_version} alone: no champion yet")
    ax.set_title(f"Permutation importance, test days: top {len(rows)} of {len(evaluation.importance)} features\n{compared}",
                 fontsize=10)
    ax.legend(loc="lower right", fontsize=9)
    return _save(fig, folder, IMPORTANCE_PLOT, drawn)


def plots(evaluation: Evaluation, scores: ScoredTestDays | None, folder: Path) -> list[CardPlot]:
    """The model card's figures as PNG files in `folder`: ROC, precision-recall and calibration
    curves of the candidate with the champion's on the same test flights (none without `scores`:
    an evaluation recorded before they were kept), and the permutation importance."""
    curves = [] if scores is None else [f(evaluation, scores, folder) for f in (roc_plot, precision_recall_plot, calibration_plot)]
    return [*curves, *([importance_plot(evaluation, folder)] if evaluation.importance else [])]


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


def _curve_lines(evaluation: Evaluation) -> list[str]:
    if not evaluation.scores_artifact:
        return ["Not drawn: this evaluation was recorded before the test scores were kept (retrain to draw them)."]
    compared = (f"the candidate (blue) and the champion v{evaluation.champion_version} it is judged against (orange), "
                "on the same test flights" if evaluation.champion_version else "the candidate alone: there is no champion yet")
    return [f"ROC, precision-recall (each model's operating threshold marked) and calibration of {compared}; "
            f"scores in `{evaluation.scores_artifact}`.",
            "",
            "  ".join(f"![{PLOT_TITLES[name]}]({name})" for name in (ROC_PLOT, PRECISION_RECALL_PLOT, CALIBRATION_PLOT))]


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
        "## Curves on the test days",
        *_curve_lines(evaluation),
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
        f"![{PLOT_TITLES[IMPORTANCE_PLOT]}]({IMPORTANCE_PLOT})" if evaluation.importance else "",
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
        "## Lineage",
        f"- MLflow run: `{candidate.run_id}`",
        f"- Dagster run: `{dagster_run_id}`",
        f"- trigger: {candidate.trigger.kind}" + (f" ({candidate.trigger.reason})" if candidate.trigger.reason else ""),
        f"- previous champion: {evaluation.champion_version or 'none'}",
    ]
    return "\n".join(lines)
