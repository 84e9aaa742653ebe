"""Deployment: the `champion` alias of the MLflow registry (`champion_model`), the model card,
and the rollback job."""

import json
from pathlib import Path

from dagster import AssetExecutionContext, MetadataValue, OpExecutionContext, Output, asset, job, op

from assets.partitions import markdown_table
from assets.training import TrainingSet
from resources.retries import STORE_RETRY_POLICY
from resources.registry import CHAMPION, PREVIOUS, ModelRegistry
from resources.settings import data_dir


def _plots(evaluation: dict, folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    roc = folder / "roc_curve.png"
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot(evaluation["roc_curve"]["fpr"], evaluation["roc_curve"]["tpr"], label="candidate")
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate",
           title=f"ROC, test days (AUC {evaluation['metrics']['candidate']['roc_auc']:.3f})")
    fig.tight_layout()
    fig.savefig(roc, dpi=90)
    plt.close(fig)
    cal = folder / "calibration.png"
    fig, ax = plt.subplots(figsize=(4, 4))
    rows = evaluation["calibration"]
    ax.plot([r["mean_predicted"] for r in rows], [r["observed_late"] for r in rows], "o-")
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.set(xlabel="mean predicted probability", ylabel="observed late share", title="Calibration, test days")
    fig.tight_layout()
    fig.savefig(cal, dpi=90)
    plt.close(fig)
    return [roc, cal]


def model_card(name: str, version: str, ts: TrainingSet, candidate: dict, evaluation: dict, deployed: bool,
               dagster_run_id: str) -> str:
    m = evaluation["metrics"]
    table = [{"model": k, **{x: round(v, 4) for x, v in r.items()}} for k, r in m.items()]
    d = ts.days
    lines = [
        f"# Model card: {name} v{version}",
        "",
        f"**Decision:** {'deployed as champion' if deployed else 'not deployed'}",
        "",
        *[f"- {r}" for r in evaluation["decision"]["reasons"]],
        "",
        "## Task",
        "Predict at scheduled departure whether a flight from EWR, JFK or LGA arrives 15+ minutes late. "
        "Features use only information known at scheduled departure.",
        "",
        "## Data",
        f"- train: {d['train'][0]} … {d['train'][-1]} ({len(d['train'])} days)",
        f"- validation (threshold): {d['validation'][0]} … {d['validation'][-1]} ({len(d['validation'])} days)",
        f"- test (gate): {d['test'][0]} … {d['test'][-1]} ({len(d['test'])} days)",
        f"- rows: {len(ts.frame)} labelled flights; data versions per day in the MLflow run tag `data.versions`",
        "",
        "## Metrics on the test days",
        markdown_table(table, ["model", "roc_auc", "pr_auc", "log_loss", "brier", "precision", "recall", "f1", "threshold", "rows"]),
        "",
        "## Segments (candidate)",
        markdown_table(evaluation["by_origin"], ["origin", "rows", "late_share", "roc_auc", "f1"]),
        "",
        markdown_table(evaluation["by_carrier"], ["carrier", "rows", "late_share", "roc_auc", "f1"]),
        "",
        "## Calibration (candidate)",
        markdown_table(evaluation["calibration"], ["bin", "rows", "mean_predicted", "observed_late"]),
        "",
        "![ROC curve](roc_curve.png)  ![Calibration](calibration.png)",
        "",
        "## Lineage",
        f"- MLflow run: `{candidate['run_id']}`",
        f"- Dagster run: `{dagster_run_id}`",
        f"- previous champion: {evaluation['champion_version'] or 'none'}",
    ]
    return "\n".join(lines)


@asset(
    retry_policy=STORE_RETRY_POLICY,
    group_name="deployment",
    kinds={"mlflow"},
    owners=["team:ml-platform"],
    tags={"stage": "deployment"},
    description="The deployed model: when the gate passes, the registry alias `champion` moves to the "
    "candidate (the old champion keeps `previous`); otherwise nothing changes and the metadata says "
    "why. A model card with ROC and calibration plots is stored with the version.",
)
def champion_model(
    context: AssetExecutionContext,
    training_set: TrainingSet,
    candidate_model: dict,
    model_evaluation: dict,
    model_registry: ModelRegistry,
):
    version = candidate_model["version"]
    decision = model_evaluation["decision"]
    previous = None
    if decision["promote"]:
        previous = model_registry.promote(version)
    champion = model_registry.version_by_alias(CHAMPION)
    card = model_card(model_registry.model_name, version, training_set, candidate_model, model_evaluation,
                      decision["promote"], context.run_id)
    folder = data_dir() / "model_cards" / f"v{version}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model_card.md").write_text(card)
    images = _plots(model_evaluation, folder)
    client = model_registry.client
    for path in [folder / "model_card.md", *images]:
        client.log_artifact(candidate_model["run_id"], str(path), artifact_path="model_card")
    client.set_model_version_tag(model_registry.model_name, version, "gate.decision",
                                 "promoted" if decision["promote"] else "rejected")
    client.set_model_version_tag(model_registry.model_name, version, "gate.reasons", json.dumps(decision["reasons"]))
    # what monitoring compares the live ROC AUC against (performance_report)
    client.set_model_version_tag(model_registry.model_name, version, "eval.test_roc_auc",
                                 f"{model_evaluation['metrics']['candidate']['roc_auc']:.6f}")
    return Output(
        {"champion_version": None if champion is None else champion.version, "candidate_version": version,
         "promoted": decision["promote"], "previous_version": previous},
        metadata={
            "champion": MetadataValue.text(
                f"{model_registry.model_name} v{champion.version}" if champion else "none"),
            "promoted": MetadataValue.bool(decision["promote"]),
            "candidate_version": MetadataValue.text(version),
            "previous": MetadataValue.text(previous or "unchanged"),
            "reasons": MetadataValue.md("\n".join(f"- {r}" for r in decision["reasons"])),
            "model_card": MetadataValue.md(card),
            "model_card_path": MetadataValue.path(str(folder / "model_card.md")),
            "mlflow_run": MetadataValue.text(candidate_model["run_id"]),
            # provenance, reachable from this page (the full chain: `python -m pipelines.provenance`)
            "trigger": MetadataValue.json({k: v for k, v in context.run.tags.items()
                                           if k == "trigger" or k.startswith("trigger.")} or {"trigger": "manual"}),
            "training_window": MetadataValue.json(training_set.days),
            "data_versions": MetadataValue.json(training_set.data_versions),
            "provenance": MetadataValue.text(f"python -m pipelines.provenance {version}"),
        },
    )


# no retry: a rollback is two alias writes, and repeating it after the first succeeded would
# leave both aliases on one version; a failed rollback is for a person to look at and re-run
@op(description="Move `champion` back to the `previous` model version.")
def rollback_champion(context: OpExecutionContext, model_registry: ModelRegistry):
    rolled_back, restored = model_registry.rollback()
    context.log.info(f"champion: v{rolled_back} -> v{restored} (v{rolled_back} is now `{PREVIOUS}`)")
    return restored


@job(description="Roll the deployed model back: `champion` moves to `previous`.", tags={"stage": "deployment"})
def rollback_job():
    rollback_champion()
