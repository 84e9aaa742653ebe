"""Evaluation: candidate, current champion and a baseline on the same test rows, and the
promotion decision with every reason (`model_evaluation`), recorded on the candidate's MLflow
run (test metrics, the whole evaluation as `evaluation/evaluation.json`, and the test flights'
outcomes with both models' probabilities as `evaluation/test_scores.json`, which the model card's
curves are drawn from)."""

import pandas as pd
from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, ResourceParam
from pydantic import Field

from assets.asset_factory import DataFailure, latest_materialization, lifecycle_asset, table_metadata
from assets.common import bullet_list
from assets.evaluation.logic import GatePolicy, evaluate
from assets.training.logic import BASELINE_COLUMNS, build_training_set
from resources.registry import EVALUATION_ARTIFACT, ModelRegistry
from resources.training_data import read_window
from resources.warehouse import Warehouse

METRIC_COLUMNS = {"model": "string", **dict.fromkeys(("roc_auc", "pr_auc", "log_loss", "brier", "precision", "recall", "f1",
                                                         "threshold"), "float")}
CALIBRATION_COLUMNS = {"bin": "string", "rows": "int", "mean_predicted": "float", "observed_late": "float"}
SEGMENT_COLUMNS = {"rows": "int", "late_share": "float", "roc_auc": "float", "f1": "float"}
SEGMENT_GUARD_COLUMNS = {"segment": "string", "rows": "int", "candidate_roc_auc": "float", "champion_roc_auc": "float",
                         "difference": "float"}


def importance_columns(evaluation) -> dict[str, str]:
    return {"feature": "string", "candidate": "float", **({"champion": "float"} if evaluation.champion_version else {})}


class GateConfig(Config):
    min_roc_auc: float = Field(default=GatePolicy.min_roc_auc, description="Absolute floor of the candidate's test ROC AUC.")
    min_margin: float = Field(default=GatePolicy.min_margin, description="Required ROC AUC margin over the champion on the same rows.")
    segment_margin: float = Field(default=GatePolicy.segment_margin, description="A candidate whose ROC AUC is below the "
                                  "champion's by more than this on any origin, or on any carrier with segment_min_rows "
                                  "test flights, is rejected (the reason names the segment).")
    segment_min_rows: int = Field(default=GatePolicy.segment_min_rows, description="Test flights a carrier needs to be guarded.")
    force_promote: bool = Field(default=False, description="Manual override: promote whatever the gate says.")
    override_reason: str = Field(default="", description="Why the override was used (required with force_promote).")


@lifecycle_asset(
    "evaluation",
    deps=["candidate_model"],
    kinds={"sklearn", "mlflow"},
    description="Candidate, current champion and a baseline (historical late rate by route and hour) scored on the "
    "same test days: ROC AUC, PR AUC, log loss, Brier, calibration error, precision/recall/F1 at the operating "
    "threshold, calibration, per origin and per carrier, candidate vs champion on every guarded segment, "
    "permutation importance of both; and the promotion decision with every reason.",
)
def model_evaluation(context: AssetExecutionContext, config: GateConfig, warehouse: ResourceParam[Warehouse],
                     model_registry: ResourceParam[ModelRegistry]) -> MaterializeResult:
    version = latest_materialization(context, "candidate_model").metadata["model_version"].value
    candidate = model_registry.record(version)
    splits = candidate.window.splits
    window = candidate.window  # the versions of the days the candidate was trained and tested on
    rows = pd.concat([read_window(warehouse, window, splits["test"]),  # scored by every model
                      read_window(warehouse, window, splits["train"], columns=BASELINE_COLUMNS)],  # the baseline's history
                     ignore_index=True)
    ts = build_training_set(rows, candidate.window, splits=("train", "test"))
    champion = model_registry.champion()
    champion_model = None
    if champion is not None:
        try:
            champion_model = model_registry.load(champion.version)
        except RuntimeError as exc:
            raise DataFailure(f"the current champion cannot be evaluated, nothing changes: {exc}") from exc
    try:
        evaluation, scores = evaluate(
            ts, version, model_registry.load(version),  # what is registered is what is judged
            candidate.threshold, None if champion is None else champion.version, champion_model,
            0.5 if champion is None else champion.threshold, GatePolicy(**config.model_dump()))
    except ValueError as exc:
        raise DataFailure(str(exc)) from exc
    model_registry.log_metrics(candidate.run_id, evaluation.mlflow_metrics(), model_id=candidate.model_id)
    # the scores first: an evaluation that names its scores artifact has it
    model_registry.log_json(candidate.run_id, evaluation.scores_artifact, scores.as_json())
    model_registry.log_json(candidate.run_id, EVALUATION_ARTIFACT, evaluation.as_json())
    days = evaluation.test_days
    return MaterializeResult(metadata={
        "model_version": MetadataValue.text(version),
        "decision": MetadataValue.text("PROMOTE" if evaluation.verdict.promote else "KEEP CHAMPION"),
        # sentences, not a table: a markdown list (the alerts and the demo read its lines)
        "reasons": MetadataValue.md(bullet_list(evaluation.verdict.reasons)),
        "metrics": table_metadata(evaluation.table(), METRIC_COLUMNS),
        "candidate_roc_auc": MetadataValue.float(evaluation.candidate.roc_auc),
        "test_days": MetadataValue.text(f"{days[0]} … {days[-1]}"),
        "calibration": table_metadata(evaluation.calibration, CALIBRATION_COLUMNS),
        "by_origin": table_metadata(evaluation.by_origin, {"origin": "string", **SEGMENT_COLUMNS}),
        "by_carrier": table_metadata(evaluation.by_carrier, {"carrier": "string", **SEGMENT_COLUMNS}),
        # no rows without a champion (the reasons say "no champion yet")
        "segments_vs_champion": table_metadata(evaluation.segments, SEGMENT_GUARD_COLUMNS),
        "permutation_importance": table_metadata(evaluation.importance[:15], importance_columns(evaluation)),
        "calibration_error": MetadataValue.float(evaluation.candidate.calibration_error),
        "mlflow_run_id": MetadataValue.text(candidate.run_id),
        "evaluation_artifact": MetadataValue.url(model_registry.artifact_url(candidate.run_id, EVALUATION_ARTIFACT)),
        "test_scores_artifact": MetadataValue.url(model_registry.artifact_url(candidate.run_id, evaluation.scores_artifact)),
    })
