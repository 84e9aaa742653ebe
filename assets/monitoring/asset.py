"""Monitoring of the deployed model, one report per day (Evidently):

- `drift_report`: the day's features and predictions against the reference of the model that
  scored them (a fixed-seed sample of that model's training window);
- `performance_report`: once the day's arrivals are known, the model's real ROC AUC, precision,
  recall and calibration on the day, and on the trailing days against its evaluation ROC AUC.

Each report records the thresholds it applied and its verdict (`dataset_drift`,
`performance_degraded`) in the day's metadata; the sensors act on those verdicts.
"""

import json
import time

import pandas as pd
from dagster import (
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetRecordsFilter,
    Config,
    MaterializeResult,
    MetadataValue,
)
from pydantic import Field

from assets.asset_factory import add_partition_metadata, lifecycle_asset, partition_check_results
from assets.common import markdown_table, partition_days
from assets.monitoring.logic import (
    DRIFT_COLUMNS_CATEGORICAL,
    DRIFT_COLUMNS_NUMERIC,
    KEY,
    atomic_write,
    day_version,
    reference_and_thresholds,
    rounded,
    shadow_comparison,
    trailing_days,
    trailing_performance,
)
from assets.monitoring.reports import SnapshotLabels, classification_report, drift_report_for_day
from assets.training.asset import read_window
from assets.training.logic import LABEL
from resources.errors import DataProblem
from resources.monitoring_workspace import (
    DRIFT_TAG,
    EVALUATION_ROC_AUC,
    PERFORMANCE_TAG,
    SERVED_DRIFT_TAG,
    TRAILING_ROC_AUC,
    MonitoringUnavailable,
    MonitoringWorkspace,
)
from resources.registry import ModelRegistry
from resources.schemas import flight_features, predictions, served_predictions, shadow_predictions
from resources.settings import settings
from resources.warehouse import Warehouse
from served_model.features import model_input


def _number(value: float, digits: int = 4):
    """A float for the metadata, or a note when it is undefined (e.g. ROC AUC of a one-class day)."""
    shown = rounded(value, digits)
    return MetadataValue.text("undefined") if shown is None else MetadataValue.float(shown)


def scored_days(warehouse: Warehouse, days: list[str]) -> pd.DataFrame:
    """Features, labels and the stored prediction of each flight of `days`."""
    feats = warehouse.read(flight_features, days)
    preds = warehouse.read(predictions, days, columns=[*KEY, "probability_late", "predicted_late", "threshold", "model_version"])
    return feats.merge(preds, on=KEY, how="inner", validate="one_to_one")


UPLOAD_CHECK = "snapshot_uploaded"
SNAPSHOT_ID = "evidently_snapshot_id"


def _upload_check(asset: str) -> AssetCheckSpec:
    return AssetCheckSpec(UPLOAD_CHECK, asset=asset, description=(
        "The day's Evidently snapshot reached the monitoring workspace (FLIGHTS_EVIDENTLY_URL, or the local workspace): "
        "WARN when the upload failed after its retries; the day's verdicts and figures are recorded either way, and "
        "re-materializing the day uploads it again."))


DRIFT_CHECK = "no_dataset_drift"
MIN_SERVED_ROWS = 50  # served flights of a day below which their drift is not judged
PERFORMANCE_CHECK = "performance_not_degraded"


def _previous_snapshots(context: AssetExecutionContext, days: list[str], id_key: str = SNAPSHOT_ID) -> dict[str, str]:
    """The snapshot id each day's latest earlier materialization uploaded (replaced on upload)."""
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(context.asset_key.path), asset_partitions=days), limit=4 * len(days)).records
    out: dict[str, str] = {}
    for record in records:  # newest first
        meta = record.asset_materialization.metadata
        if record.partition_key not in out and id_key in meta:
            out[record.partition_key] = meta[id_key].value
    return out


class _Uploads:
    """Each day's snapshot to the monitoring workspace; a failed upload is recorded, not raised:
    the day's verdicts stand without it."""

    def __init__(self, context: AssetExecutionContext, workspace: MonitoringWorkspace, kind: str, prefix: str = ""):
        """`prefix` names a second snapshot of the same days (e.g. `served_`)."""
        self.context, self.workspace, self.kind, self.prefix = context, workspace, kind, prefix
        self.previous = _previous_snapshots(context, context.partition_keys, prefix + SNAPSHOT_ID)
        self.results: dict[str, tuple[bool, dict]] = {}
        self.failed: str | None = None  # once the workspace is down, later days of the run do not wait again

    def __call__(self, day: str, snapshot) -> dict:
        if self.failed is None:
            started = time.perf_counter()
            try:
                link = self.workspace.upload(snapshot, f"{self.kind} {day}", replaces=self.previous.get(day))
            except MonitoringUnavailable as exc:
                self.failed = str(exc)
                self.context.log.warning(f"partition {day}: {self.kind} snapshot not uploaded: {exc}")
            else:
                self.results[day] = (True, {"snapshot": MetadataValue.url(link.url)})
                p = self.prefix
                return {f"{p}report": MetadataValue.url(link.url), p + SNAPSHOT_ID: MetadataValue.text(link.snapshot_id),
                        f"{p}snapshot_upload_seconds": MetadataValue.float(round(time.perf_counter() - started, 3))}
        self.results[day] = (False, {"error": MetadataValue.text(self.failed)})
        return {f"{self.prefix}report": MetadataValue.text(f"not uploaded: {self.failed}")}

    def checks(self):
        return partition_check_results(self.context, UPLOAD_CHECK, self.results, severity=AssetCheckSeverity.WARN)


def drift_reference(warehouse: Warehouse, model_registry: ModelRegistry, version: str, rows: int,
                    quantile: float) -> tuple[pd.DataFrame, dict[str, float]]:
    """A fixed-seed sample of the model's training window, scored by that model, and the
    per-column thresholds calibrated on the window's days; cached per model run (a version
    number alone can be reused by a new tracking store)."""
    record = model_registry.record(version)
    if not record.window.days:
        raise DataProblem(f"{record.label} records no training window: its drift reference is unknown")
    stem = settings().reports_dir / "reference" / f"{record.name}-v{version}-{record.run_id[:12]}-{rows}-q{quantile}"
    sample_path, thresholds_path = stem.with_suffix(".parquet"), stem.with_suffix(".json")
    if sample_path.exists() and thresholds_path.exists():
        return pd.read_parquet(sample_path), json.loads(thresholds_path.read_text())
    frame = read_window(warehouse, record.window, record.window.days)  # the versions it was trained on
    frame["probability_late"] = model_registry.load(version).predict_proba(model_input(frame))[:, 1]
    ref, thresholds = reference_and_thresholds(frame, rows, quantile)
    atomic_write(sample_path, lambda p: ref.to_parquet(p, index=False))
    atomic_write(thresholds_path, lambda p: p.write_text(json.dumps(thresholds, indent=1)))
    return ref, thresholds


def _shadow_rows(warehouse: Warehouse, challenger, last_day: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The shadow challenger's scores and the champion's labelled rows of the days since it became
    the challenger, up to `last_day`: read once for all the days of a run."""
    days = [d for d in partition_days() if challenger.challenger_since < d <= last_day]
    shadow = warehouse.read(shadow_predictions, days)
    labelled = scored_days(warehouse, sorted(set(shadow["partition_date"])))
    labelled = labelled[labelled[LABEL].notna()].copy()
    labelled[LABEL] = labelled[LABEL].astype(int)
    return shadow, labelled


def _shadow_metadata(shadow: pd.DataFrame, labelled: pd.DataFrame, challenger, day: str) -> dict:
    """The shadow challenger against the champion on the labelled days since it became the
    challenger, up to `day`, pooled."""
    from assets.evaluation.logic import GatePolicy

    compared = shadow_comparison(labelled[labelled["partition_date"] <= day], shadow[shadow["partition_date"] <= day],
                                 challenger.version, settings().shadow_days, GatePolicy().min_margin, LABEL)
    return {
        "shadow_challenger": MetadataValue.text(challenger.version),
        "shadow_days": MetadataValue.int(compared.days),
        "shadow_champion_roc_auc": _number(compared.champion_roc_auc),
        "shadow_challenger_roc_auc": _number(compared.challenger_roc_auc),
        "shadow_verdict": MetadataValue.text(compared.verdict),
        "shadow_reason": MetadataValue.text(compared.reason),
    }


def _dashboard_link(workspace: MonitoringWorkspace, upload: _Uploads):
    if upload.failed:
        return MetadataValue.text(f"unreachable: {upload.failed}")
    return MetadataValue.url(workspace.project_url())


class DriftConfig(Config):
    drift_share: float | None = Field(default=None, description="Dataset drift when at least this share of the monitored "
                                      "columns drifted; unset: FLIGHTS_DRIFT_SHARE (default 0.3).")
    column_threshold: float | None = Field(default=None, description="One drift threshold for every column; 0 = calibrated "
                                           "per column on the reference; unset: FLIGHTS_COLUMN_DRIFT_THRESHOLD (default 0).")
    column_quantile: float | None = Field(default=None, description="Calibrated thresholds: this quantile of the training "
                                          "days' own distances to the reference, never below Evidently's default; unset: "
                                          "FLIGHTS_COLUMN_DRIFT_QUANTILE (default 0.95).")
    reference_rows: int | None = Field(default=None, description="Rows sampled (fixed seed) from the model's training "
                                       "window as reference; unset: FLIGHTS_DRIFT_REFERENCE_ROWS (default 5000).")


@lifecycle_asset(
    "monitoring",
    daily=True,
    deps=["predictions"],
    kinds={"evidently"},
    check_specs=[_upload_check("drift_report"), AssetCheckSpec(
        DRIFT_CHECK, asset="drift_report", description= "WARN when the day's features and predictions drifted from the model's reference "
        "(dataset drift: the drifted share of the monitored columns reached the threshold), or when the traffic the "
        "scoring server served for the day did. drift_sensor requests a retrain on the same verdict.")],
    description="Evidently data drift of the day's features and predicted probabilities against the reference of the "
    "model that scored them (a fixed-seed sample of its training window): dataset drift share, per-column method / "
    "score / threshold / verdict, and the day's snapshot in the Evidently workspace (link `report`).",
)
def drift_report(context: AssetExecutionContext, config: DriftConfig, warehouse: Warehouse,
                 model_registry: ModelRegistry, monitoring_workspace: MonitoringWorkspace):
    s = settings()
    share = s.drift_share if config.drift_share is None else config.drift_share
    column_threshold = s.column_drift_threshold if config.column_threshold is None else config.column_threshold
    quantile = s.column_drift_quantile if config.column_quantile is None else config.column_quantile
    reference_rows = s.drift_reference_rows if config.reference_rows is None else max(1001, config.reference_rows)
    days = context.partition_keys
    current = scored_days(warehouse, days)
    served = warehouse.read(served_predictions, days)
    references: dict[str, tuple] = {}
    per_day, summary, verdicts = {}, [], {}
    upload = _Uploads(context, monitoring_workspace, "drift")
    served_upload = _Uploads(context, monitoring_workspace, "served drift", prefix="served_")

    def reference_of(version: str):
        if version not in references:
            references[version] = drift_reference(warehouse, model_registry, version, reference_rows, quantile)
        return references[version]

    for day in days:
        rows = current[current["partition_date"] == day]
        if rows.empty:
            raise DataProblem(f"partition {day}: no scored flights to monitor (table predictions); run score_job for the day first")
        version = day_version(rows, day)
        ref, calibrated = reference_of(version)
        result = drift_report_for_day(ref, rows, DRIFT_COLUMNS_NUMERIC, DRIFT_COLUMNS_CATEGORICAL,
                                      drift_share=share, column_threshold=column_threshold or calibrated,
                                      labels=SnapshotLabels(day, (DRIFT_TAG,), {"model_version": version}))
        per_day[day] = {
            "dataset_drift": MetadataValue.bool(result.dataset_drift),
            "drift_share": MetadataValue.float(round(result.share, 4)),
            "drifted_columns": MetadataValue.int(result.count),
            "monitored_columns": MetadataValue.int(result.judged),
            "drift_share_threshold": MetadataValue.float(share),
            "columns": MetadataValue.md(markdown_table(result.columns, ["column", "method", "score", "threshold", "drifted"])),
            "model_version": MetadataValue.text(version),
            "reference": MetadataValue.text(
                f"{len(ref)} rows sampled from {ref['partition_date'].min()} … {ref['partition_date'].max()}"),
            "column_thresholds": MetadataValue.text(
                f"{column_threshold} for every column" if column_threshold
                else f"calibrated: q{quantile} of the training days' distances, at least Evidently's default"),
            "current_rows": MetadataValue.int(len(rows)),
            **upload(day, result.snapshot),
        }
        # what the scoring server served for the day, against the reference of the version that served it
        served_day = served[served["partition_date"] == day]
        served_drift = None
        per_day[day]["served_rows"] = MetadataValue.int(len(served_day))
        if len(served_day) >= MIN_SERVED_ROWS:
            served_version = served_day["model_version"].mode().iloc[0]
            served_day = served_day[served_day["model_version"] == served_version]
            s_ref, s_calibrated = reference_of(served_version)
            served_drift = drift_report_for_day(
                s_ref, served_day, DRIFT_COLUMNS_NUMERIC, DRIFT_COLUMNS_CATEGORICAL, drift_share=share,
                column_threshold=column_threshold or s_calibrated,
                labels=SnapshotLabels(day, (SERVED_DRIFT_TAG,), {"model_version": served_version, "source": "served"}))
            per_day[day].update({
                "served_dataset_drift": MetadataValue.bool(served_drift.dataset_drift),
                "served_drift_share": MetadataValue.float(round(served_drift.share, 4)),
                "served_drifted_columns": MetadataValue.text(served_drift.drifted),
                "served_model_version": MetadataValue.text(served_version),
                **served_upload(day, served_drift.snapshot),
            })
        drifted = result.dataset_drift or bool(served_drift and served_drift.dataset_drift)
        verdicts[day] = (not drifted, {
            "drift_share": MetadataValue.float(round(result.share, 4)), "threshold": MetadataValue.float(share),
            "drifted": MetadataValue.text(result.drifted),
            "served_drift_share": (MetadataValue.float(round(served_drift.share, 4)) if served_drift
                                   else MetadataValue.text(f"{len(served_day)} served flights (< {MIN_SERVED_ROWS})"))})
        summary.append({"day": day, "drift_share": round(result.share, 3), "dataset_drift": result.dataset_drift,
                        "drifted": ", ".join(c["column"] for c in result.columns if c["drifted"])})
    add_partition_metadata(context, per_day)
    yield from upload.checks()
    yield from partition_check_results(context, DRIFT_CHECK, verdicts, severity=AssetCheckSeverity.WARN)
    yield MaterializeResult(metadata={
        "days": MetadataValue.int(len(days)),
        "monitoring_dashboard": _dashboard_link(monitoring_workspace, upload),
        "days_with_dataset_drift": MetadataValue.int(sum(r["dataset_drift"] for r in summary)),
        "summary": MetadataValue.md(markdown_table(summary[-31:], ["day", "drift_share", "dataset_drift", "drifted"])),
    })


class PerformanceConfig(Config):
    roc_auc_drop: float | None = Field(default=None, description="Degraded when the trailing ROC AUC is this far below the "
                                       "model's evaluation ROC AUC; unset: FLIGHTS_ROC_AUC_DROP (default 0.05).")
    window_days: int | None = Field(default=None, description="Trailing days pooled for the ROC AUC the threshold applies "
                                    "to; unset: FLIGHTS_PERFORMANCE_WINDOW_DAYS (default 3).")


@lifecycle_asset(
    "monitoring",
    daily=True,
    deps=["predictions", "flight_features"],
    kinds={"evidently"},
    check_specs=[_upload_check("performance_report"), AssetCheckSpec(
        PERFORMANCE_CHECK, asset="performance_report", description= "WARN when the model's ROC AUC over the trailing days fell "
        "FLIGHTS_ROC_AUC_DROP or more below its evaluation ROC AUC. performance_sensor requests a retrain on the same "
        "verdict.")],
    description="Once the day's arrivals are known: the deployed model's real ROC AUC, precision, recall and "
    "calibration on the day (an Evidently classification snapshot in the monitoring workspace, link `report`), and "
    "its ROC AUC over the trailing days against the ROC AUC it had at evaluation.",
)
def performance_report(context: AssetExecutionContext, config: PerformanceConfig, warehouse: Warehouse,
                       model_registry: ModelRegistry, monitoring_workspace: MonitoringWorkspace):
    s = settings()
    drop_threshold = s.roc_auc_drop if config.roc_auc_drop is None else config.roc_auc_drop
    window = s.performance_window_days if config.window_days is None else config.window_days
    days = context.partition_keys
    scored = scored_days(warehouse, sorted({d for day in days for d in trailing_days(day, window)}))
    labelled = scored[scored[LABEL].notna()].copy()
    labelled[LABEL] = labelled[LABEL].astype(int)
    per_day, summary, verdicts = {}, [], {}
    upload = _Uploads(context, monitoring_workspace, "performance")
    challenger = model_registry.challenger()
    if challenger is None or challenger.challenger_mode != "shadow" or not challenger.challenger_since:
        challenger = None
    else:
        shadow, shadow_labelled = _shadow_rows(warehouse, challenger, max(days))
    for day in days:
        rows = labelled[labelled["partition_date"] == day]
        if rows.empty:
            raise DataProblem(f"partition {day}: no scored flight with a known arrival (tables predictions, flight_features.is_late)")
        version = day_version(rows, day)
        record = model_registry.record(version)
        if record.evaluation_roc_auc is None:
            raise DataProblem(f"{record.label} has no evaluation ROC AUC (tag eval.test_roc_auc): "
                              "nothing to compare its live ROC AUC with")
        trailing = trailing_performance(labelled, day, version, window, record.evaluation_roc_auc, drop_threshold, LABEL)
        result = classification_report(
            rows, LABEL, labels=SnapshotLabels(day, (PERFORMANCE_TAG,), {"model_version": version}),
            figures={TRAILING_ROC_AUC: rounded(trailing.roc_auc), EVALUATION_ROC_AUC: record.evaluation_roc_auc})
        per_day[day] = {
            "performance_degraded": MetadataValue.bool(trailing.degraded),
            "roc_auc": _number(result.metrics["roc_auc"]),
            "precision": _number(result.metrics["precision"]),
            "recall": _number(result.metrics["recall"]),
            "brier": _number(result.metrics["brier"]),
            "calibration": MetadataValue.md(markdown_table(result.calibration, ["bin", "rows", "mean_predicted", "observed_late"])),
            "trailing_roc_auc": _number(trailing.roc_auc),
            "trailing_days": MetadataValue.text(f"{trailing.first_day} … {day} ({trailing.days} days, {trailing.flights} flights)"),
            "evaluation_roc_auc": MetadataValue.float(round(record.evaluation_roc_auc, 4)),
            "roc_auc_drop": _number(trailing.drop),
            "roc_auc_drop_threshold": MetadataValue.float(drop_threshold),
            "late_share": MetadataValue.float(round(float(rows[LABEL].mean()), 4)),
            "labelled_rows": MetadataValue.int(len(rows)),
            "model_version": MetadataValue.text(version),
            **upload(day, result.snapshot),
        }
        if challenger is not None and day > challenger.challenger_since:
            per_day[day].update(_shadow_metadata(shadow, shadow_labelled, challenger, day))
        verdicts[day] = (not trailing.degraded, {
            "trailing_roc_auc": _number(trailing.roc_auc), "evaluation_roc_auc": MetadataValue.float(round(record.evaluation_roc_auc, 4)),
            "roc_auc_drop": _number(trailing.drop), "threshold": MetadataValue.float(drop_threshold)})
        summary.append({"day": day, "roc_auc": round(result.metrics["roc_auc"], 3), "trailing_roc_auc": round(trailing.roc_auc, 3),
                        "drop": round(trailing.drop, 3), "degraded": trailing.degraded})
    add_partition_metadata(context, per_day)
    yield from upload.checks()
    yield from partition_check_results(context, PERFORMANCE_CHECK, verdicts, severity=AssetCheckSeverity.WARN)
    yield MaterializeResult(metadata={
        "days": MetadataValue.int(len(days)),
        "monitoring_dashboard": _dashboard_link(monitoring_workspace, upload),
        "days_degraded": MetadataValue.int(sum(r["degraded"] for r in summary)),
        "summary": MetadataValue.md(markdown_table(summary[-31:], ["day", "roc_auc", "trailing_roc_auc", "drop", "degraded"])),
    })
