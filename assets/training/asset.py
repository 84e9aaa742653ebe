"""Training: the trailing window of features (`training_set`, recorded on a new MLflow run) and
the fitted, logged and registered candidate (`candidate_model`, logged into that run).

Neither hands a value to the next step: the window is on the MLflow run, the candidate is a
registered version; each step finds its upstream's record in its materialization metadata.
"""

import json

from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, ResourceParam
from pydantic import Field

from assets.asset_factory import latest_materialization, lifecycle_asset, table_metadata
from assets.training.build import git_commit, lock_digest, pip_requirements, training_dataset
from assets.training.logic import (
    FIT_SPLITS,
    LABEL,
    TRIAL_METRICS,
    ModelParams,
    SearchPolicy,
    build_training_set,
    check_label_counts,
    fit_candidate,
    label_counts,
    split_days,
    split_summary,
    window_days,
)
from resources.errors import DataProblem
from resources.records import SPLITS, BuildInfo, RetrainTrigger, Tag, TrainingWindow
from resources.registry import ModelRegistry
from resources.schemas import flight_features
from resources.settings import settings
from resources.training_data import read_window, record_window
from resources.warehouse import Warehouse
from served_model import PACKAGE_VERSION
from served_model.features import FEATURE_COLUMNS, model_input

FLAG_COLUMNS = {"day": "string", "check": "string", "severity": "string", "detail": "string"}
SPLIT_COLUMNS = {"split": "string", "days": "string", "rows": "int", "late_share": "float"}


class TrainingSetConfig(Config):
    end_day: str = Field(default="", description="Last day of the window (default: the newest day with features).")
    window_days: int = Field(default=365, description="Days the window reaches back at most; days before the first day "
                             "with features are left out. Split by time: oldest train, then validation (10 %, at most 14 "
                             "days), then test (20 %, at most 14 days, newest). candidate_model chooses how many of the "
                             "newest train days it fits on (its train_window_options).")
    min_rows: int = Field(default=2000, description="Fewer labelled rows than this is an error.")


@lifecycle_asset(
    "training",
    deps=["flight_features"],
    kinds={"sql", "mlflow"},
    description="Labelled features of a trailing window of days (default 60) ending at a chosen day, split by "
    "time into train / validation / test, checked (enough rows, both classes in every split) and recorded on "
    "a new MLflow run with every day's data version and what triggered the retrain.",
)
def training_set(context: AssetExecutionContext, config: TrainingSetConfig, warehouse: ResourceParam[Warehouse],
                 model_registry: ResourceParam[ModelRegistry]) -> MaterializeResult:
    end = config.end_day or warehouse.latest_partition(flight_features)
    if end is None:
        raise DataProblem("no day of flight_features has been built: run ingest_job first")
    days = window_days(end, config.window_days)
    present = warehouse.count_by_partition(flight_features, days)
    first = next((d for d in days if present[d]), end)
    days = [d for d in days if d >= first]  # history starts at the first day with features
    # a day flagged as a broken feed (blocked, or written with a failed feed check) is not trained
    # or tested on until a new version passes or a person releases it (resources/day_flags.py)
    flagged = warehouse.open_flags(days)
    left_out = sorted({f.day for f in flagged})
    days = [d for d in days if d not in left_out]
    splits = split_days(days)
    missing = [d for d in days if not present[d]]
    if missing:
        raise DataProblem(f"training window {days[0]}…{days[-1]}: no features for {len(missing)} day(s), e.g. {missing[:5]}")
    counts = warehouse.rows_by(flight_features, days, LABEL).dropna(subset=[LABEL])
    check_label_counts(counts, splits, config.min_rows)
    current = warehouse.current_versions("flight_features", days)
    window = TrainingWindow(splits, {d: current[d][1] for d in days if d in current},
                            {d: current[d][0] for d in days if d in current})
    build = BuildInfo(context.run_id, context.job_name, git_commit(), lock_digest(), PACKAGE_VERSION)
    run_id = record_window(warehouse, model_registry, window, RetrainTrigger.from_tags(context.run.tags), build,
                           run_name=f"retrain-{context.run_id[:8]}")
    return MaterializeResult(metadata={
        "window": MetadataValue.text(f"{days[0]} … {days[-1]} ({len(days)} days)"),
        "rows": MetadataValue.int(int(counts["rows"].sum())),
        "dagster/row_count": MetadataValue.int(int(counts["rows"].sum())),  # the window's labelled rows
        "splits": table_metadata(split_summary(counts, splits), SPLIT_COLUMNS),
        "partitions": MetadataValue.json({"flight_features": days}),
        "data_versions": MetadataValue.json({d: {"version_id": window.version_ids.get(d), "content_hash": h}
                                             for d, h in window.data_versions.items()}),
        "mlflow_run_id": MetadataValue.text(run_id),
        "mlflow_run": MetadataValue.url(model_registry.run_url(run_id)),
        "days_left_out": MetadataValue.int(len(left_out)),
        "flagged_days": table_metadata([{"day": f.day, "check": f.check, "severity": f.severity, "detail": f.detail}
                                        for f in flagged], FLAG_COLUMNS),
    })


class ModelConfig(Config):
    learning_rate: float = ModelParams.learning_rate
    max_iter: int = ModelParams.max_iter
    max_leaf_nodes: int = ModelParams.max_leaf_nodes
    min_samples_leaf: int = ModelParams.min_samples_leaf
    l2_regularization: float = ModelParams.l2_regularization
    random_state: int = ModelParams.random_state
    train_window_options: list[int] = Field(
        default=list(SearchPolicy.train_window_options),
        description="Training windows tried, in days of the train split (newest first; 0 = all of it); the one with "
        "the best validation ROC AUC is kept. [0]: always all of it.")
    tuning_trials: int | None = Field(
        default=None, description="Fits the search makes in all (the windows, then hyperparameters sampled on the best "
        "window, each a nested MLflow run); 0 or 1: no tuning (a fast retrain). Unset: FLIGHTS_TUNING_TRIALS (20).")
    tuning_seconds: float | None = Field(
        default=None, description="No new tuning trial after this many seconds. Unset: FLIGHTS_TUNING_SECONDS (30).")
    refit: bool = Field(
        default=True, description="Fit the chosen trial again on its train days plus the validation days (the "
        "threshold and the calibration map stay those of the validation days' out-of-sample probabilities).")
    calibrate: bool = Field(
        default=True, description="Fit isotonic and sigmoid calibration on the validation days and apply the one that "
        "lowers log loss on the test days (none if neither does).")

    def params(self) -> ModelParams:
        return ModelParams(**{f: getattr(self, f) for f in ModelParams.__dataclass_fields__})

    def policy(self) -> SearchPolicy:
        current = settings()
        return SearchPolicy(
            train_window_options=tuple(self.train_window_options),
            tuning_trials=current.tuning_trials if self.tuning_trials is None else self.tuning_trials,
            tuning_seconds=current.tuning_seconds if self.tuning_seconds is None else self.tuning_seconds,
            seed=self.random_state, refit=self.refit)


@lifecycle_asset(
    "training",
    deps=["training_set"],
    kinds={"sklearn", "mlflow"},
    description="A scikit-learn Pipeline (ordinal categories + HistGradientBoosting, fixed seed) fitted on the "
    "train days of the recorded window: a search judged on the validation days chooses the training window "
    "(train_window_options) and, with tuning, the hyperparameters (each trial a nested MLflow run); isotonic or "
    "sigmoid calibration fitted on the validation days is applied when it lowers log loss on the test days; "
    "threshold chosen on the validation days; logged to the retrain's MLflow run (params, metrics, dataset, "
    "signature, tags back to the Dagster run and partitions) and registered as a new version with the chosen "
    "parameters.",
)
def candidate_model(context: AssetExecutionContext, config: ModelConfig, warehouse: ResourceParam[Warehouse],
                    model_registry: ResourceParam[ModelRegistry]) -> MaterializeResult:
    run_id = latest_materialization(context, "training_set").metadata["mlflow_run_id"].value
    window = model_registry.training_window(run_id)
    splits = SPLITS if config.calibrate else FIT_SPLITS  # calibration is decided on the test days
    days = [d for s in splits for d in window.splits[s]]
    ts = build_training_set(read_window(warehouse, window, days), window, splits=splits)
    params, policy = config.params(), config.policy()
    fitted = fit_candidate(ts, params, policy, calibrate_on_test=config.calibrate)
    chosen = fitted.chosen
    trial_rows = [t.as_row() for t in fitted.trials]
    model_registry.log_trials(run_id, trial_rows, TRIAL_METRICS)
    chosen_params = {**chosen.params.as_dict(), "train_days": chosen.train_days, "train_from": chosen.train_from,
                     "refit_with_validation": fitted.refit, "calibration": fitted.calibration["method"]}
    record, seconds = model_registry.register_candidate(
        fitted.model, run_id=run_id,
        params={**chosen_params, "threshold": round(fitted.threshold, 6), "features": ",".join(FEATURE_COLUMNS),
                "search_trials": len(fitted.trials), "train_window_options": ",".join(map(str, policy.train_window_options))},
        metrics={"validation_roc_auc": fitted.validation_roc_auc, "train_rows": chosen.train_rows,
                 **{f"calibration_{k}": v for k, v in fitted.calibration.items() if k != "method"}},
        threshold=fitted.threshold, sample=model_input(ts.split("validation").head(50)),
        dataset=training_dataset(window, f"{warehouse.display_url}#flight_features"),
        pip_requirements=pip_requirements(),
        version_tags={Tag.MODEL_PARAMS: json.dumps(chosen_params, sort_keys=True), Tag.CALIBRATION: fitted.calibration["method"]},
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
        "hyperparameters": MetadataValue.json(chosen_params),
        "search": table_metadata(trial_rows, list(trial_rows[0])),  # the trials' own columns, typed as their values
        "search_trials": MetadataValue.int(len(trial_rows)),
        "chosen_trial": MetadataValue.int(chosen.number),
        "training_window": MetadataValue.text(
            f"{chosen.train_from} … {window.splits['train'][-1]} ({chosen.train_days} days, {chosen.train_rows} rows)"
            + (f", then refit with the validation days to {window.splits['validation'][-1]}" if fitted.refit else "")),
        "calibration": MetadataValue.json(fitted.calibration),
        "splits": table_metadata(split_summary(label_counts(ts.frame), window.splits), SPLIT_COLUMNS),
        "mlflow_logging_seconds": MetadataValue.float(round(seconds, 3)),
    })
