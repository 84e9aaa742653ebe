"""Monitoring of the deployed model, one report per day (Evidently):

- `drift_report`: the day's features and predictions against the reference of the model that
  scored them (a fixed-seed sample of that model's training window);
- `performance_report`: once the day's arrivals are known, the model's real ROC AUC, precision,
  recall and calibration on the day, and on the trailing days against its evaluation ROC AUC.

Each report records the thresholds it applied and its verdict (`dataset_drift`,
`performance_degraded`) in the day's metadata; the sensors act on those verdicts.
"""

import json
import math
from pathlib import Path

import pandas as pd
from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset
from pydantic import Field

from assets.partitions import add_partition_metadata, daily_partitions, markdown_table, single_run_backfill
from assets.reports import calibrated_thresholds, classification_report, drift_report_for_day
from assets.training import LABEL, model_input
from resources.retries import STORE_RETRY_POLICY, DataFailure
from resources.registry import ModelRegistry
from resources.schemas import flight_features, predictions
from resources.settings import (
    COLUMN_DRIFT_QUANTILE,
    COLUMN_DRIFT_THRESHOLD,
    DRIFT_COLUMNS_CATEGORICAL,
    DRIFT_COLUMNS_NUMERIC,
    DRIFT_REFERENCE_ROWS,
    DRIFT_SHARE_THRESHOLD,
    PERFORMANCE_WINDOW_DAYS,
    ROC_AUC_DROP_THRESHOLD,
    reports_dir,
)
from resources.warehouse import Warehouse

DRIFT_COLUMNS = DRIFT_COLUMNS_NUMERIC + DRIFT_COLUMNS_CATEGORICAL
KEY = ["partition_date", "row_number"]


def _number(value: float, digits: int = 4):
    """A float for the metadata, or a note when it is undefined (e.g. ROC AUC of a one-class day)."""
    return MetadataValue.float(round(value, digits)) if math.isfinite(value) else MetadataValue.text("undefined")


def _atomic_write(path: Path, write) -> Path:
    """Write through a temporary file and rename: a failed run leaves no half-written report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    tmp.replace(path)
    return path


def scored_days(warehouse: Warehouse, days: list[str]) -> pd.DataFrame:
    """Features, labels and the stored prediction of each flight of `days`."""
    feats = warehouse.read(flight_features, days)
    preds = warehouse.read(predictions, days, columns=[*KEY, "probability_late", "predicted_late", "threshold", "model_version"])
    return feats.merge(preds, on=KEY, how="inner", validate="one_to_one")


def model_window(model_registry: ModelRegistry, version: str) -> tuple[list[str], object]:
    """The days a registered version was trained on (all splits) and its registry record."""
    mv = model_registry.client.get_model_version(model_registry.model_name, str(version))
    splits = json.loads(mv.tags.get("data.partitions", "{}"))
    days = [d for part in ("train", "validation", "test") for d in splits.get(part, [])]
    if not days:
        raise DataFailure(f"model {model_registry.model_name} v{version} has no `data.partitions` tag: "
                      "its training window, the drift reference, is unknown")
    return days, mv


def drift_reference(warehouse: Warehouse, model_registry: ModelRegistry, version: str, rows: int,
                    quantile: float) -> tuple[pd.DataFrame, dict[str, float]]:
    """A fixed-seed sample of the model's training window, scored by that model, and the
    per-column thresholds calibrated on the window's days; cached per model run (a version
    number alone can be reused by a new tracking store)."""
    days, mv = model_window(model_registry, version)
    stem = reports_dir() / "reference" / f"{mv.name}-v{version}-{mv.run_id[:12]}-{rows}-q{quantile}"
    sample_path, thresholds_path = stem.with_suffix(".parquet"), stem.with_suffix(".json")
    if sample_path.exists() and thresholds_path.exists():
        return pd.read_parquet(sample_path), json.loads(thresholds_path.read_text())
    frame = warehouse.read(flight_features, days)
    model = model_registry.load(version)
    frame["probability_late"] = model.predict_proba(model_input(frame))[:, 1]
    ref, thresholds = reference_and_thresholds(frame, rows, quantile)
    _atomic_write(sample_path, lambda p: ref.to_parquet(p, index=False))
    _atomic_write(thresholds_path, lambda p: p.write_text(json.dumps(thresholds, indent=1)))
    return ref, thresholds


def reference_and_thresholds(window: pd.DataFrame, rows: int, quantile: float) -> tuple[pd.DataFrame, dict[str, float]]:
    """The reference sample of a scored training window and its calibrated column thresholds."""
    sample = window.sample(n=min(rows, len(window)), random_state=0).sort_values(KEY, kind="stable")
    ref = sample[["partition_date", *DRIFT_COLUMNS]].reset_index(drop=True)
    by_day = {d: part for d, part in window.groupby("partition_date")}
    thresholds = calibrated_thresholds(ref, by_day, DRIFT_COLUMNS_NUMERIC, DRIFT_COLUMNS_CATEGORICAL, quantile)
    return ref, thresholds


def _day_version(day_rows: pd.DataFrame, day: str) -> str:
    versions = day_rows["model_version"].unique()
    if len(versions) != 1:
        raise DataFailure(f"partition {day}: predictions come from several model versions {sorted(versions)}; "
                      "re-score the day (score_job) before monitoring it")
    return str(versions[0])


class DriftConfig(Config):
    drift_share: float = Field(default=DRIFT_SHARE_THRESHOLD, description="Dataset drift when at least this share of the monitored columns drifted (FLIGHTS_DRIFT_SHARE).")
    column_threshold: float = Field(default=COLUMN_DRIFT_THRESHOLD, description="One drift threshold for every column; 0 = calibrated per column on the reference (FLIGHTS_COLUMN_DRIFT_THRESHOLD).")
    column_quantile: float = Field(default=COLUMN_DRIFT_QUANTILE, description="Calibrated thresholds: this quantile of the training days' own distances to the reference, never below Evidently's default (FLIGHTS_COLUMN_DRIFT_QUANTILE).")
    reference_rows: int = Field(default=DRIFT_REFERENCE_ROWS, description="Rows sampled (fixed seed) from the model's training window as reference (FLIGHTS_DRIFT_REFERENCE_ROWS).")


@asset(
    retry_policy=STORE_RETRY_POLICY,
    deps=["predictions"],
    partitions_def=daily_partitions,
    backfill_policy=single_run_backfill,
    group_name="monitoring",
    kinds={"evidently"},
    owners=["team:ml-platform"],
    tags={"stage": "monitoring"},
    description="Evidently data drift of the day's features and predicted probabilities against the "
    "reference of the model that scored them (a fixed-seed sample of its training window): dataset "
    "drift share, per-column method / score / threshold / verdict, and the HTML report.",
)
def drift_report(context: AssetExecutionContext, config: DriftConfig, warehouse: Warehouse, model_registry: ModelRegistry):
    days = context.partition_keys
    current = scored_days(warehouse, days)
    references: dict[str, tuple] = {}
    per_day, summary = {}, []
    for day in days:
        rows = current[current["partition_date"] == day]
        if rows.empty:
            raise DataFailure(f"partition {day}: no scored flights to monitor (table predictions); run score_job for the day first")
        version = _day_version(rows, day)
        if version not in references:
            references[version] = drift_reference(warehouse, model_registry, version, config.reference_rows,
                                                  config.column_quantile)
        ref, calibrated = references[version]
        result = drift_report_for_day(
            ref, rows, DRIFT_COLUMNS_NUMERIC, DRIFT_COLUMNS_CATEGORICAL,
            drift_share=config.drift_share, column_threshold=config.column_threshold or calibrated,
        )
        html = _atomic_write(reports_dir() / "drift" / f"drift_{day}.html", result.save_html)
        per_day[day] = {
            "dataset_drift": MetadataValue.bool(result.dataset_drift),
            "drift_share": MetadataValue.float(round(result.share, 4)),
            "drifted_columns": MetadataValue.int(result.count),
            "monitored_columns": MetadataValue.int(len(result.columns)),
            "drift_share_threshold": MetadataValue.float(config.drift_share),
            "columns": MetadataValue.md(markdown_table(result.columns, ["column", "method", "score", "threshold", "drifted"])),
            "model_version": MetadataValue.text(version),
            "reference": MetadataValue.text(
                f"{len(ref)} rows sampled from {ref['partition_date'].min()} … {ref['partition_date'].max()}"),
            "column_thresholds": MetadataValue.text(
                f"{config.column_threshold} for every column" if config.column_threshold
                else f"calibrated: q{config.column_quantile} of the training days' distances, at least Evidently's default"),
            "current_rows": MetadataValue.int(len(rows)),
            "report": MetadataValue.path(str(html)),
        }
        summary.append({"day": day, "drift_share": round(result.share, 3), "dataset_drift": result.dataset_drift,
                        "drifted": ", ".join(c["column"] for c in result.columns if c["drifted"])})
    add_partition_metadata(context, per_day)
    return MaterializeResult(metadata={
        "days": MetadataValue.int(len(days)),
        "days_with_dataset_drift": MetadataValue.int(sum(r["dataset_drift"] for r in summary)),
        "summary": MetadataValue.md(markdown_table(summary[-31:], ["day", "drift_share", "dataset_drift", "drifted"])),
    })


class PerformanceConfig(Config):
    roc_auc_drop: float = Field(default=ROC_AUC_DROP_THRESHOLD, description="Degraded when the trailing ROC AUC is this far below the model's evaluation ROC AUC (FLIGHTS_ROC_AUC_DROP).")
    window_days: int = Field(default=PERFORMANCE_WINDOW_DAYS, description="Trailing days pooled for the ROC AUC the threshold applies to (FLIGHTS_PERFORMANCE_WINDOW_DAYS).")


def trailing_days(day: str, n: int) -> list[str]:
    keys = daily_partitions.get_partition_keys()
    i = keys.index(day)
    return keys[max(0, i - n + 1): i + 1]


def evaluation_roc_auc(model_registry: ModelRegistry, version: str) -> float:
    mv = model_registry.client.get_model_version(model_registry.model_name, str(version))
    if "eval.test_roc_auc" not in mv.tags:
        raise DataFailure(f"model {model_registry.model_name} v{version} has no `eval.test_roc_auc` tag: "
                      "nothing to compare its live ROC AUC with")
    return float(mv.tags["eval.test_roc_auc"])


@asset(
    retry_policy=STORE_RETRY_POLICY,
    deps=["predictions", "flight_features"],
    partitions_def=daily_partitions,
    backfill_policy=single_run_backfill,
    group_name="monitoring",
    kinds={"evidently"},
    owners=["team:ml-platform"],
    tags={"stage": "monitoring"},
    description="Once the day's arrivals are known: the deployed model's real ROC AUC, precision, recall "
    "and calibration on the day (Evidently classification report, HTML), and its ROC AUC over the "
    "trailing days against the ROC AUC it had at evaluation.",
)
def performance_report(context: AssetExecutionContext, config: PerformanceConfig, warehouse: Warehouse,
                       model_registry: ModelRegistry):
    from sklearn.metrics import roc_auc_score

    days = context.partition_keys
    window = sorted({d for day in days for d in trailing_days(day, config.window_days)})
    scored = scored_days(warehouse, window)
    labelled = scored[scored[LABEL].notna()].copy()
    labelled[LABEL] = labelled[LABEL].astype(int)
    per_day, summary = {}, []
    for day in days:
        rows = labelled[labelled["partition_date"] == day]
        if rows.empty:
            raise DataFailure(f"partition {day}: no scored flight with a known arrival (tables predictions, flight_features.is_late)")
        version = _day_version(rows, day)
        pooled = labelled[labelled["partition_date"].isin(trailing_days(day, config.window_days))
                          & (labelled["model_version"] == version)]
        reference_auc = evaluation_roc_auc(model_registry, version)
        trailing_auc = float(roc_auc_score(pooled[LABEL], pooled["probability_late"])) if pooled[LABEL].nunique() == 2 else float("nan")
        drop = reference_auc - trailing_auc
        degraded = bool(drop >= config.roc_auc_drop)  # NaN (one class only) is never a verdict
        result = classification_report(rows, LABEL)
        html = _atomic_write(reports_dir() / "performance" / f"performance_{day}.html", result.save_html)
        per_day[day] = {
            "performance_degraded": MetadataValue.bool(degraded),
            "roc_auc": _number(result.metrics["roc_auc"]),
            "precision": _number(result.metrics["precision"]),
            "recall": _number(result.metrics["recall"]),
            "brier": _number(result.metrics["brier"]),
            "calibration": MetadataValue.md(markdown_table(result.calibration, ["bin", "rows", "mean_predicted", "observed_late"])),
            "trailing_roc_auc": _number(trailing_auc),
            "trailing_days": MetadataValue.text(f"{pooled['partition_date'].min()} … {day} ({pooled['partition_date'].nunique()} days, {len(pooled)} flights)"),
            "evaluation_roc_auc": MetadataValue.float(round(reference_auc, 4)),
            "roc_auc_drop": _number(drop),
            "roc_auc_drop_threshold": MetadataValue.float(config.roc_auc_drop),
            "late_share": MetadataValue.float(round(float(rows[LABEL].mean()), 4)),
            "labelled_rows": MetadataValue.int(len(rows)),
            "model_version": MetadataValue.text(version),
            "report": MetadataValue.path(str(html)),
        }
        summary.append({"day": day, "roc_auc": round(result.metrics["roc_auc"], 3), "trailing_roc_auc": round(trailing_auc, 3),
                        "drop": round(drop, 3), "degraded": degraded})
    add_partition_metadata(context, per_day)
    return MaterializeResult(metadata={
        "days": MetadataValue.int(len(days)),
        "days_degraded": MetadataValue.int(sum(r["degraded"] for r in summary)),
        "summary": MetadataValue.md(markdown_table(summary[-31:], ["day", "roc_auc", "trailing_roc_auc", "drop", "degraded"])),
    })
