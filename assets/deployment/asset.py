"""Deployment: the `champion` alias of the MLflow registry (`champion_model`), the model card,
and the rollback job."""


import tempfile
from pathlib import Path

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, OpExecutionContext, job, op

from assets.asset_factory import latest_materialization, lifecycle_asset
from assets.common import bullet_list
from assets.deployment.logic import CARD_FILE, model_card, plots
from assets.evaluation.logic import Evaluation
from resources.registry import EVALUATION_ARTIFACT, MODEL_CARD_FOLDER, PREVIOUS, ModelRegistry


@lifecycle_asset(
    "deployment",
    deps=["model_evaluation"],
    kinds={"mlflow"},
    description="The deployed model: when the gate passes, the registry alias `champion` moves to the candidate "
    "(the old champion keeps `previous`); otherwise nothing changes and the metadata says why. A model card "
    "with ROC and calibration plots is stored with the version's MLflow run.",
)
def champion_model(context: AssetExecutionContext, model_registry: ModelRegistry) -> MaterializeResult:
    version = latest_materialization(context, "model_evaluation").metadata["model_version"].value
    candidate = model_registry.record(version)
    evaluation = Evaluation.from_json(model_registry.read_json(candidate.run_id, EVALUATION_ARTIFACT))
    verdict = evaluation.verdict
    previous = model_registry.promote(version) if verdict.promote else None
    champion = model_registry.champion()
    card = model_card(candidate, evaluation, verdict.promote, context.run_id)
    with tempfile.TemporaryDirectory() as scratch:  # the card lives in the artifact store, not on this host
        folder = Path(scratch)
        (folder / CARD_FILE).write_text(card)
        model_registry.log_files(candidate.run_id, [folder / CARD_FILE, *plots(evaluation, folder)], MODEL_CARD_FOLDER)
    # what monitoring compares the live ROC AUC against (performance_report), and the decision
    model_registry.record_verdict(version, verdict, evaluation.candidate.roc_auc)
    return MaterializeResult(metadata={
        "champion": MetadataValue.text(champion.label if champion else "none"),
        "promoted": MetadataValue.bool(verdict.promote),
        "candidate_version": MetadataValue.text(version),
        "previous": MetadataValue.text(previous or "unchanged"),
        "reasons": MetadataValue.md(bullet_list(verdict.reasons)),
        "model_card": MetadataValue.md(card),
        "model_card_url": MetadataValue.url(model_registry.artifact_url(candidate.run_id, f"{MODEL_CARD_FOLDER}/{CARD_FILE}")),
        "model_version_url": MetadataValue.url(model_registry.version_url(version)),
        "mlflow_run": MetadataValue.url(model_registry.run_url(candidate.run_id)),
        # provenance, reachable from this page (the full chain: `python -m pipelines.provenance`)
        "trigger": MetadataValue.json(candidate.trigger.tags()),
        "training_window": MetadataValue.json(candidate.window.splits),
        "data_versions": MetadataValue.json(candidate.window.data_versions),
        "provenance": MetadataValue.text(f"python -m pipelines.provenance {version}"),
    })


# no retry: a rollback is two alias writes, and repeating it after the first succeeded would
# leave both aliases on one version; a failed rollback is for a person to look at and re-run
@op(description="Move `champion` back to the `previous` model version.")
def rollback_champion(context: OpExecutionContext, model_registry: ModelRegistry) -> None:
    rolled_back, restored = model_registry.rollback()
    context.log.info(f"champion: v{rolled_back} -> v{restored} (v{rolled_back} is now `{PREVIOUS}`)")


@job(description="Roll the deployed model back: `champion` moves to `previous`.", tags={"stage": "deployment"})
def rollback_job():
    rollback_champion()
