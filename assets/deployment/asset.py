"""Deployment: the `champion` (or `challenger`) alias of the MLflow registry (`champion_model`)
and the model card. The jobs that move aliases by hand (approve, reject, roll back):
pipelines/orchestration/deployment.py."""


import tempfile
from pathlib import Path

from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, ResourceParam
from pydantic import Field

from assets.asset_factory import ALIAS_MOVES_POOL, latest_materialization, lifecycle_asset
from assets.common import bullet_list
from assets.deployment.logic import CARD_FILE, PLOT_TITLES, challenger_waits, model_card, plots
from assets.evaluation.logic import Evaluation, ScoredTestDays
from resources.errors import DataProblem
from resources.registry import EVALUATION_ARTIFACT, MODEL_CARD_FOLDER, ModelRegistry
from resources.settings import PROMOTION_MODES, settings


class DeploymentConfig(Config):
    promotion_mode: str | None = Field(default=None, description="What a candidate that passes the gate becomes: "
                                       "`auto` the champion, `approve` the challenger waiting for approve_challenger_job, "
                                       "`shadow` the challenger scoring beside the champion until its shadow days decide, `canary` the challenger "
                                       "answering a share of live flights until its canary days decide; "
                                       "unset: FLIGHTS_PROMOTION_MODE (default auto).")


@lifecycle_asset(
    "deployment",
    pool=ALIAS_MOVES_POOL,
    deps=["model_evaluation"],
    kinds={"mlflow"},
    description="The deployed model: when the gate passes, the registry alias `champion` moves to the candidate "
    "(the old champion keeps `previous`), or, with promotion mode approve, shadow or canary, `challenger` does and the "
    "candidate waits; otherwise nothing changes and the metadata says why. A model card with ROC, precision-recall "
    "and calibration curves (the candidate with the champion's on the same test days) and permutation importance "
    "is stored with the version's MLflow run. Approvals, rejections and rollbacks (their jobs) are recorded "
    "here too (metadata `event`).",
)
def champion_model(context: AssetExecutionContext, config: DeploymentConfig, model_registry: ResourceParam[ModelRegistry]) -> MaterializeResult:
    mode = config.promotion_mode or settings().promotion_mode
    if mode not in PROMOTION_MODES:
        raise DataProblem(f"promotion_mode {mode!r}: expected one of {', '.join(PROMOTION_MODES)}")
    version = latest_materialization(context, "model_evaluation").metadata["model_version"].value
    candidate = model_registry.record(version)
    evaluation = Evaluation.from_json(model_registry.read_json(candidate.run_id, EVALUATION_ARTIFACT))
    # the test flights' outcomes and both models' probabilities, as model_evaluation scored them
    scores = (ScoredTestDays.from_json(model_registry.read_json(candidate.run_id, evaluation.scores_artifact))
              if evaluation.scores_artifact else None)
    verdict = evaluation.verdict
    previous, superseded, event = None, None, "rejected"
    if verdict.promote and mode == "auto":
        previous = model_registry.promote(version, by="gate", reason="; ".join(verdict.reasons), dagster_run_id=context.run_id)
        event = "promoted"
    elif verdict.promote:
        superseded = model_registry.set_challenger(version, mode, candidate.window.days[-1], by="gate",
                                                   reason="passed the gate", dagster_run_id=context.run_id)
        event = "challenger"
    champion = model_registry.champion()
    waiting = challenger_waits(mode)
    decision = {"promoted": "deployed as champion", "rejected": "not deployed",
                "challenger": f"challenger ({mode}), {waiting}"}[event]
    card = model_card(candidate, evaluation, decision, context.run_id)
    with tempfile.TemporaryDirectory() as scratch:  # the card lives in the artifact store, not on this host
        folder = Path(scratch)
        (folder / CARD_FILE).write_text(card)
        figures = [plot.path for plot in plots(evaluation, scores, folder)]
        model_registry.log_files(candidate.run_id, [folder / CARD_FILE, *figures], MODEL_CARD_FOLDER)
    # what monitoring compares the live ROC AUC against (performance_report), and the decision
    model_registry.record_verdict(version, verdict, evaluation.candidate.roc_auc)
    return MaterializeResult(metadata={
        "event": MetadataValue.text(event),
        "champion": MetadataValue.text(champion.label if champion else "none"),
        "promoted": MetadataValue.bool(event == "promoted"),
        "promotion_mode": MetadataValue.text(mode),
        "challenger": MetadataValue.text(version if event == "challenger" else "none"),
        **({"challenger_since": MetadataValue.text(candidate.window.days[-1])} if event == "challenger" else {}),
        **({"superseded_challenger": MetadataValue.text(superseded)} if superseded else {}),
        "candidate_version": MetadataValue.text(version),
        "previous": MetadataValue.text(previous or "unchanged"),
        # markdown, not tables: the reasons are sentences (the alerts and the demo read its lines), the
        # model card is a document (the same text as the stored model_card.md), the plots are links
        "reasons": MetadataValue.md(bullet_list(verdict.reasons)),
        "model_card": MetadataValue.md(card),
        "model_card_url": MetadataValue.url(model_registry.artifact_url(candidate.run_id, f"{MODEL_CARD_FOLDER}/{CARD_FILE}")),
        "model_card_plots": MetadataValue.md(bullet_list([
            f"[{PLOT_TITLES[f.name]}]({model_registry.artifact_url(candidate.run_id, f'{MODEL_CARD_FOLDER}/{f.name}')})" for f in figures])),
        "model_version_url": MetadataValue.url(model_registry.version_url(version)),
        "mlflow_run": MetadataValue.url(model_registry.run_url(candidate.run_id)),
        # provenance, reachable from this page (the full chain: `flights-provenance`)
        "trigger": MetadataValue.json(candidate.trigger.tags()),
        "training_window": MetadataValue.json(candidate.window.splits),
        "data_versions": MetadataValue.json({d: {"version_id": candidate.window.version_ids.get(d), "content_hash": h}
                                             for d, h in candidate.window.data_versions.items()}),
        "provenance": MetadataValue.text(f"flights-provenance {version}"),
    })
