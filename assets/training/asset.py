"""Training: the trailing window of features (`training_set`, recorded on a new MLflow run) and
the fitted, logged and registered candidate (`candidate_model`, logged into that run).

Neither hands a value to the next step: the window is on the MLflow run, the candidate is a
registered version; each step finds its upstream's record in its materialization metadata.
"""

from dagster import AssetExecutionContext, AssetKey, AssetRecordsFilter, Config, MaterializeResult, MetadataValue
from pydantic import Field

from assets.asset_factory import latest_materialization, lifecycle_asset
from assets.common import markdown_table
from assets.training.logic import (
    FIT_SPLITS,
    LABEL,
    ModelParams,
    build_training_set,
    check_label_counts,
    fit_candidate,
    git_commit,
    label_counts,
    lock_digest,
    pip_requirements,
    split_days,
    split_summary,
    training_dataset,
    window_days,
)
from resources.errors import DataProblem
from resources.records import BuildInfo, RetrainTrigger, TrainingWindow
from resources.registry import ModelRegistry
from resources.schemas import flight_features
from resources.warehouse import Warehouse
from served_model import PACKAGE_VERSION
from served_model.features import FEATURE_COLUMNS, model_input


class TrainingSetConfig(Config):
    end_day: str = Field(default="", description="Last day of the window (default: the newest day with features).")
    window_days: int = Field(default=60, description="Days in the trailing window.")
    min_rows: int = Field(default=2000, description="Fewer labelled rows than this is an error.")


def feature_data_versions(context: AssetExecutionContext, days: list[str]) -> dict[str, str]:
    """Data version of each day, as recorded by its latest flight_features materialization."""
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey("flight_features"), asset_partitions=days), limit=len(days) * 20
    ).records
    out: dict[str, str] = {}
    for r in records:  # newest first
        m = r.asset_materialization
        if m.partition not in out and "data_version" in m.metadata:
            out[m.partition] = m.metadata["data_version"].value
    return out


@lifecycle_asset(
    "training",
    deps=["flight_features"],
    kinds={"sql", "mlflow"},
    description="Labelled features of a trailing window of days (default 60) ending at a chosen day, split by "
    "time into train / validation / test, checked (enough rows, both classes in every split) and recorded on "
    "a new MLflow run with every day's data version and what triggered the retrain.",
)
def training_set(context: AssetExecutionContext, config: TrainingSetConfig, warehouse: Warehouse,
                 model_registry: ModelRegistry) -> MaterializeResult:
    end = config.end_day or warehouse.latest_partition(flight_features)
    if end is None:
        raise DataProblem("no day of flight_features has been built: run ingest_job first")
    days = window_days(end, config.window_days)
    splits = split_days(days)
    present = warehouse.count_by_partition(flight_features, days)
    missing = [d for d in days if not present[d]]
    if missing:
        raise DataProblem(f"training window {days[0]}…{days[-1]}: no features for {len(missing)} day(s), e.g. {missing[:5]}")
    counts = warehouse.rows_by(flight_features, days, LABEL).dropna(subset=[LABEL])
    check_label_counts(counts, splits, config.min_rows)
    window = TrainingWindow(splits, feature_data_versions(context, days))
    build = BuildInfo(context.run_id, context.job_name, git_commit(), lock_digest(), PACKAGE_VERSION)
    run_id = model_registry.start_training_run(window, RetrainTrigger.from_tags(context.run.tags), build,
                                               run_name=f"retrain-{context.run_id[:8]}")
    return MaterializeResult(metadata={
        "window": MetadataValue.text(f"{days[0]} … {days[-1]} ({len(days)} days)"),
        "rows": MetadataValue.int(int(counts["rows"].sum())),
        "splits": MetadataValue.md(markdown_table(split_summary(counts, splits), ["split", "days", "rows", "late_share"])),
        "partitions": MetadataValue.json({"flight_features": days}),
        "data_versions": MetadataValue.json(window.data_versions),
        "mlflow_run_id": MetadataValue.text(run_id),
        "mlflow_run": MetadataValue.url(model_registry.run_url(run_id)),
    })


class ModelConfig(Config):
    learning_rate: float = ModelParams.learning_rate
    max_iter: int = ModelParams.max_iter
    max_leaf_nodes: int = ModelParams.max_leaf_nodes
    min_samples_leaf: int = ModelParams.min_samples_leaf
    l2_regularization: float = ModelParams.l2_regularization
    random_state: int = ModelParams.random_state


@lifecycle_asset(
    "training",
    deps=["training_set"],
    kinds={"sklearn", "mlflow"},
    description="A scikit-learn Pipeline (ordinal categories + HistGradientBoosting, fixed seed) fitted on the "
    "train days of the recorded window; threshold chosen on the validation days; logged to the retrain's MLflow "
    "run (params, metrics, dataset, signature, tags back to the Dagster run and partitions) and registered as "
    "a new version.",
)
def candidate_model(context: AssetExecutionContext, config: ModelConfig, warehouse: Warehouse,
                    model_registry: ModelRegistry) -> MaterializeResult:
    run_id = latest_materialization(context, "training_set").metadata["mlflow_run_id"].value
    window = model_registry.training_window(run_id)
    days = [d for s in FIT_SPLITS for d in window.splits[s]]
    ts = build_training_set(warehouse.read(flight_features, days), window, splits=FIT_SPLITS)
    params = ModelParams(**config.model_dump())
    fitted = fit_candidate(ts, params)
    record, seconds = model_registry.register_candidate(
        fitted.model, run_id=run_id,
        params={**params.as_dict(), "threshold": round(fitted.threshold, 6), "features": ",".join(FEATURE_COLUMNS)},
        metrics={"validation_roc_auc": fitted.validation_roc_auc, "train_rows": len(ts.split("train"))},
        threshold=fitted.threshold, sample=model_input(ts.split("validation").head(50)),
        dataset=training_dataset(window, f"{warehouse.display_url}#flight_features"),
        pip_requirements=pip_requirements(),
    )
    return MaterializeResult(metadata={
        "model_version": MetadataValue.text(record.version),
        "model": MetadataValue.text(record.label),
        "mlflow_run_id": MetadataValue.text(run_id),
        "mlflow_run": MetadataValue.url(model_registry.run_url(run_id)),
        "model_version_url": MetadataValue.url(model_registry.version_url(record.version)),
        "mlflow_tracking_uri": MetadataValue.text(model_registry.display_tracking_uri),
        "validation_roc_auc": MetadataValue.float(fitted.validation_roc_auc),
        "threshold": MetadataValue.float(fitted.threshold),
        "hyperparameters": MetadataValue.json(params.as_dict()),
        "splits": MetadataValue.md(markdown_table(split_summary(label_counts(ts.frame), window.splits),
                                                  ["split", "days", "rows", "late_share"])),
        "mlflow_logging_seconds": MetadataValue.float(round(seconds, 3)),
    })
