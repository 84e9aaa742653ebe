"""Monitoring of the deployed model, one report per day (Evidently):

- `drift_report`: the day's features and predictions against the reference of the model that
  scored them (a fixed-seed sample of that model's training window);
- `performance_report`: once the day's arrivals are known, the model's real ROC AUC, precision,
  recall and calibration on the day, and on the trailing days against its evaluation ROC AUC.

Each report records the thresholds it applied and its verdict (`dataset_drift`,
`performance_degraded`) in the day's metadata; the sensors act on those verdicts.
"""

import functools
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
    ResourceParam,
)
from pydantic import Field

from assets.asset_factory import add_partition_metadata, lifecycle_asset, partition_check_results, table_metadata
from assets.monitoring.decisions import (
    canary_metadata,
    canary_of,
    feed_incidents,
    number,
    scored_days,
    shadow_metadata,
    shadow_of,
    watch_metadata,
    watch_of,
)
from assets.monitoring.logic import (
    CALIBRATION_TABLE,
    COLUMNS_TABLE,
    DRIFT_SUMMARY,
    MAX_STALE_SERVED_SHARE,
    MIN_SERVED_ROWS,
    PERFORMANCE_SUMMARY,
    STALE_SERVED_DAYS,
    DayDrift,
    DayPerformance,
    DriftThresholds,
    PerformanceThresholds,
    SnapshotNames,
    cached_reference,
    drift_days,
    labelled_rows,
    performance_days,
    reference_and_thresholds,
    trailing_days,
    trailing_span,
)
from assets.monitoring.reports import SnapshotTest
from assets.monitoring.served import ServedPerformance, served_performance
from assets.training.logic import LABEL
from resources.errors import DataProblem
from resources.monitoring_workspace import (
    DRIFT_TAG,
    EVALUATION_ROC_AUC,
    PERFORMANCE_TAG,
    SERVED_DRIFT_TAG,
    SERVED_ROC_AUC,
    TRAILING_ROC_AUC,
    MonitoringUnavailable,
    MonitoringWorkspace,
)
from resources.registry import ModelRegistry
from resources.schemas import served_predictions
from resources.settings import settings
from resources.training_data import read_window
from resources.warehouse import Warehouse
from served_model.features import model_input

NAMES = SnapshotNames(drift=DRIFT_TAG, served_drift=SERVED_DRIFT_TAG, performance=PERFORMANCE_TAG,
                      trailing_roc_auc=TRAILING_ROC_AUC, evaluation_roc_auc=EVALUATION_ROC_AUC, served_roc_auc=SERVED_ROC_AUC)


def _table(rows: list[dict], columns: list[tuple[str, str, str]]):
    """Rows as a Dagster table; `columns`: (name, type, description). An undefined figure is empty."""
    return table_metadata(rows, {c: kind for c, kind, _ in columns}, {c: d for c, _, d in columns})


def _tests(tests: list[SnapshotTest]):
    """The Evidently tests the check's verdict is read from, as the snapshot shows them."""
    return MetadataValue.text("; ".join(f"{t.status}: {t.description}" for t in tests) or "none (no verdict)")



UPLOAD_CHECK = "snapshot_uploaded"
SNAPSHOT_ID = "evidently_snapshot_id"


def _upload_check(asset: str) -> AssetCheckSpec:
    return AssetCheckSpec(UPLOAD_CHECK, asset=asset, description=(
        "The day's Evidently snapshot reached the monitoring workspace (FLIGHTS_EVIDENTLY_URL, or the local workspace): "
        "WARN when the upload failed after its retries; the day's verdicts and figures are recorded either way, and "
        "re-materializing the day uploads it again."))


DRIFT_CHECK = "no_dataset_drift"
SERVED_CURRENT_CHECK = "served_requests_current"
PERFORMANCE_CHECK = "performance_not_degraded"
SERVED_PERFORMANCE_CHECK = "served_performance_not_degraded"
ROLLBACK_CHECK = "champion_not_worse_than_previous"
NO_WATCH = {"watch": MetadataValue.text("no rollback watch on this day")}


class _Uploads:
    """Each day's snapshot to the monitoring workspace; a failed upload is recorded, not raised:
    the day's verdicts stand without it."""

    def __init__(self, context: AssetExecutionContext, workspace: MonitoringWorkspace, kind: str, prefix: str = ""):
        """`prefix` names a second snapshot of the same days (e.g. `served_`)."""
        self.context, self.workspace, self.kind, self.prefix = context, workspace, kind, prefix
        days = context.partition_keys  # the snapshot each day's latest earlier materialization uploaded: replaced
        records = context.instance.fetch_materializations(AssetRecordsFilter(
            asset_key=AssetKey(context.asset_key.path), asset_partitions=days), limit=4 * len(days)).records
        self.previous: dict[str, str] = {}
        for record in records:  # newest first
            meta = record.asset_materialization.metadata
            if record.partition_key not in self.previous and prefix + SNAPSHOT_ID in meta:
                self.previous[record.partition_key] = meta[prefix + SNAPSHOT_ID].value
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

    def build() -> tuple[pd.DataFrame, dict[str, float]]:
        frame = read_window(warehouse, record.window, record.window.days)  # the versions it was trained on
        frame["probability_late"] = model_registry.load(version).predict_proba(model_input(frame))[:, 1]
        return reference_and_thresholds(frame, rows, quantile)

    return cached_reference(settings().reports_dir / "reference" / f"{record.name}-v{version}-{record.run_id[:12]}-{rows}-q{quantile}",
                            build)


def _dashboard_link(workspace: MonitoringWorkspace, upload: _Uploads):
    if upload.failed:
        return MetadataValue.text(f"unreachable: {upload.failed}")
    return MetadataValue.url(workspace.project_url())


def _drift_metadata(d: DayDrift, t: DriftThresholds) -> dict:
    meta = {
        "dataset_drift": MetadataValue.bool(d.batch.dataset_drift),
        "drift_share": MetadataValue.float(round(d.batch.share, 4)),
        "drifted_columns": MetadataValue.int(d.batch.count),
        "monitored_columns": MetadataValue.int(d.batch.judged),
        "drift_share_threshold": MetadataValue.float(t.drift_share),
        "columns": _table(d.batch.columns, COLUMNS_TABLE),
        "model_version": MetadataValue.text(d.version),
        "reference": MetadataValue.text(d.reference),
        "column_thresholds": MetadataValue.text(t.described),
        "current_rows": MetadataValue.int(d.rows),
        "dagster/row_count": MetadataValue.int(d.rows),  # the flights judged
        "served_rows": MetadataValue.int(d.served_rows),
        "served_asked_by_flight": MetadataValue.int(d.asked_by_flight),
        "served_stale_rows": MetadataValue.int(d.stale),
        "served_stale_share": MetadataValue.float(round(d.stale_share, 4)),
    }
    if not d.served_current:
        meta["served_stale"] = MetadataValue.text(
            f"{d.stale} of {d.asked_by_flight} flights asked by flight on {d.day} were for departures more than "
            f"{STALE_SERVED_DAYS} day before it (the oldest {d.oldest_departure}): a caller's clock or cache is stale, "
            "and the features answered are another day's; the day's served drift leaves them out")
    if d.served is not None:  # what the scoring server served, against the reference of the version that served it
        meta.update({"served_dataset_drift": MetadataValue.bool(d.served.dataset_drift),
                     "served_drift_share": MetadataValue.float(round(d.served.share, 4)),
                     "served_drifted_columns": MetadataValue.text(d.served.drifted),
                     "served_model_version": MetadataValue.text(d.served_version)})
    return meta


def _drift_check(d: DayDrift, t: DriftThresholds) -> tuple[bool, dict]:
    """The check's verdict: the day's snapshots' tests (batch and served)."""
    served = (MetadataValue.float(round(d.served.share, 4)) if d.served
              else MetadataValue.text(f"{d.served_rows} served flights (< {MIN_SERVED_ROWS})"))
    return d.passed, {"drift_share": MetadataValue.float(round(d.batch.share, 4)), "threshold": MetadataValue.float(t.drift_share),
                      "drifted": MetadataValue.text(d.batch.drifted), "served_drift_share": served,
                      "evidently_tests": _tests(d.batch.tests + (d.served.tests if d.served else []))}


def _performance_metadata(d: DayPerformance, t: PerformanceThresholds) -> dict:
    return {
        "performance_degraded": MetadataValue.bool(not d.passed),
        **{name: number(d.result.metrics[name]) for name in ("roc_auc", "precision", "recall", "brier")},
        "calibration": _table(d.result.calibration, CALIBRATION_TABLE),
        "trailing_roc_auc": number(d.trailing.roc_auc),
        "trailing_days": MetadataValue.text(f"{d.trailing.first_day} … {d.day} ({d.trailing.days} days, {d.trailing.flights} flights)"),
        "evaluation_roc_auc": MetadataValue.float(round(d.evaluation_roc_auc, 4)),
        "roc_auc_drop": number(d.trailing.drop),
        "roc_auc_drop_threshold": MetadataValue.float(t.roc_auc_drop),
        "late_share": MetadataValue.float(round(d.late_share, 4)),
        "labelled_rows": MetadataValue.int(d.rows),
        "dagster/row_count": MetadataValue.int(d.rows),  # the flights judged
        "model_version": MetadataValue.text(d.version),
    }


def _served_metadata(s: ServedPerformance) -> dict:
    """What was served by flight for the trailing days' flights, judged (`served_*`)."""
    return {"served_performance_degraded": MetadataValue.bool(not s.passed), "served_verdict": MetadataValue.text(s.said),
            "served_answers": MetadataValue.int(s.answers), "served_flights": MetadataValue.int(s.flights),
            "served_flights_matched": MetadataValue.int(s.matched), "served_roc_auc": number(s.roc_auc),
            "served_mean_probability": number(s.mean_probability), "served_late_share": number(s.late_share)}


def _performance_check(d: DayPerformance, t: PerformanceThresholds) -> tuple[bool, dict]:
    """The check's verdict: the snapshot's test of the trailing ROC AUC against its floor."""
    return d.passed, {"trailing_roc_auc": number(d.trailing.roc_auc), "evaluation_roc_auc": MetadataValue.float(round(d.evaluation_roc_auc, 4)),
                      "roc_auc_drop": number(d.trailing.drop), "threshold": MetadataValue.float(t.roc_auc_drop),
                      "evidently_tests": _tests(d.result.tests)}


class DriftConfig(Config):
    drift_share: float | None = Field(default=None, description="Dataset drift when at least this share of the monitored "
                                      "columns drifted; unset: FLIGHTS_DRIFT_SHARE (default 0.45).")
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
        "scoring server served for the day did. The verdict is the Evidently test the day's snapshot carries (share of "
        "drifted columns below the threshold), shown in the Evidently UI. drift_sensor requests a retrain on the same verdict."),
        AssetCheckSpec(SERVED_CURRENT_CHECK, asset="drift_report", description="WARN when more than 5 % of the flights "
        "asked by flight (/predict) on the day were for departures more than a day before it: a caller's clock or cache is "
        "stale and was answered another day's features. Those requests are left out of the day's served drift. Not judged "
        "(passes) with fewer than 20 flights asked by flight.")],
    description="Evidently data drift of the day's features and predicted probabilities against the reference of the "
    "model that scored them (a fixed-seed sample of its training window): dataset drift share, per-column method / "
    "score / threshold / verdict, and the day's snapshot in the Evidently workspace (link `report`).",
)
def drift_report(context: AssetExecutionContext, config: DriftConfig, warehouse: ResourceParam[Warehouse],
                 model_registry: ResourceParam[ModelRegistry], monitoring_workspace: MonitoringWorkspace):
    thresholds = DriftThresholds.of(settings(), config.drift_share, config.column_threshold, config.column_quantile,
                                    config.reference_rows)
    days = context.partition_keys
    current, served = scored_days(warehouse, days), warehouse.read(served_predictions, days)
    reference_of = functools.partial(drift_reference, warehouse, model_registry, rows=thresholds.reference_rows,
                                     quantile=thresholds.quantile)
    upload = _Uploads(context, monitoring_workspace, "drift")
    served_upload = _Uploads(context, monitoring_workspace, "served drift", prefix="served_")
    incidents = feed_incidents(warehouse, days)
    per_day, verdicts, current_verdicts, summary = {}, {}, {}, []
    for day in drift_days(days, current, served, reference_of, thresholds, NAMES):
        current_verdicts[day.day] = (day.served_current, {
            "asked_by_flight": day.asked_by_flight, "stale": day.stale, "stale_share": round(day.stale_share, 4),
            "limit": MAX_STALE_SERVED_SHARE, "oldest_departure": day.oldest_departure or "none"})
        per_day[day.day] = {**_drift_metadata(day, thresholds), **upload(day.day, day.batch.snapshot),
                            **incidents.get(day.day, {})}
        if day.served is not None:
            per_day[day.day].update(served_upload(day.day, day.served.snapshot))
        verdicts[day.day] = _drift_check(day, thresholds)
        summary.append(day.summary_row())
    add_partition_metadata(context, per_day)
    yield from upload.checks()
    yield from partition_check_results(context, DRIFT_CHECK, verdicts, severity=AssetCheckSeverity.WARN)
    yield from partition_check_results(context, SERVED_CURRENT_CHECK, current_verdicts, severity=AssetCheckSeverity.WARN)
    yield MaterializeResult(metadata={
        "days": MetadataValue.int(len(days)),
        "monitoring_dashboard": _dashboard_link(monitoring_workspace, upload),
        "days_with_dataset_drift": MetadataValue.int(sum(r["dataset_drift"] for r in summary)),
        "summary": _table(summary[-31:], DRIFT_SUMMARY),
    })


class PerformanceConfig(Config):
    roc_auc_drop: float | None = Field(default=None, description="Degraded when the trailing ROC AUC is this far below the "
                                       "model's evaluation ROC AUC; unset: FLIGHTS_ROC_AUC_DROP (default 0.07).")
    window_days: int | None = Field(default=None, description="Trailing days pooled for the ROC AUC the threshold applies "
                                    "to; unset: FLIGHTS_PERFORMANCE_WINDOW_DAYS (default 3).")


@lifecycle_asset(
    "monitoring",
    daily=True,
    deps=["predictions", "flight_features"],
    kinds={"evidently"},
    check_specs=[_upload_check("performance_report"), AssetCheckSpec(
        PERFORMANCE_CHECK, asset="performance_report", description= "WARN when the model's ROC AUC over the trailing days fell "
        "FLIGHTS_ROC_AUC_DROP or more below its evaluation ROC AUC. The verdict is the Evidently test the day's snapshot "
        "carries (trailing ROC AUC above that floor), shown in the Evidently UI. performance_sensor requests a retrain on "
        "the same verdict."), AssetCheckSpec(
        SERVED_PERFORMANCE_CHECK, asset="performance_report", description="WARN when what the scoring server answered by "
        "flight (/predict) for the trailing days' flights, matched to their arrivals, has a ROC AUC at or below the same "
        "floor. Not judged (passes, saying so) with fewer than 50 served flights with a known arrival."), AssetCheckSpec(
        ROLLBACK_CHECK, asset="performance_report", description="The rollback watch: during the first "
        "FLIGHTS_ROLLBACK_WATCH_DAYS labelled days of a champion promoted by the gate or approved, the version it replaced "
        "is scored on the same flights. WARN when, pooled over those days, the champion is worse by more than the "
        "margin (the paired bootstrap's one-sided 95 % noise of the ROC AUC difference, never less than the gate's "
        "margin); rollback_sensor then moves `champion` back. Passes, saying so, on days outside a watch.")],
    description="Once the day's arrivals are known: the deployed model's real ROC AUC, precision, recall and "
    "calibration on the day (an Evidently classification snapshot in the monitoring workspace, link `report`), and "
    "its ROC AUC over the trailing days against the ROC AUC it had at evaluation; and the same for what the scoring "
    "server actually answered by flight (`served_*`). While a challenger waits in mode shadow or canary, its verdict "
    "(`shadow_*`, `canary_*`); during a new champion's rollback watch, the watch's (`watch_*`).",
)
def performance_report(context: AssetExecutionContext, config: PerformanceConfig, warehouse: ResourceParam[Warehouse],
                       model_registry: ResourceParam[ModelRegistry], monitoring_workspace: MonitoringWorkspace):
    thresholds = PerformanceThresholds.of(settings(), config.roc_auc_drop, config.window_days)
    days = context.partition_keys
    span = trailing_span(days, thresholds.window_days)
    incidents = feed_incidents(warehouse, span)
    # a day flagged as a broken feed is no evidence about the model: left out of every trailing window
    labelled = labelled_rows(scored_days(warehouse, [d for d in span if d not in incidents]), LABEL)
    shadow, canary, watch = (shadow_of(warehouse, model_registry, max(days)), canary_of(warehouse, model_registry, max(days)),
                             watch_of(warehouse, model_registry))
    upload = _Uploads(context, monitoring_workspace, "performance")
    served = warehouse.served_by_flight(trailing_span(days, thresholds.window_days))

    def served_of(day: str, floor: float):  # what was answered by flight for the trailing days' flights, judged
        window = trailing_days(day, thresholds.window_days)
        return served_performance(served[served["scheduled_departure"].str[:10].isin(window)],
                                  labelled[labelled["partition_date"].isin(window)], floor, LABEL)

    per_day, verdicts, served_verdicts, watch_verdicts, summary = {}, {}, {}, {}, []
    for day in sorted(set(days) & set(incidents)):  # a broken feed's day: not judged, saying why
        per_day[day] = {**incidents[day], "performance_judged": False}
        not_judged = (True, {"not_judged": MetadataValue.text("feed incident: " + incidents[day]["feed_incident"].value)})
        verdicts[day] = served_verdicts[day] = watch_verdicts[day] = not_judged
    judged = [d for d in days if d not in incidents]
    for day in performance_days(judged, labelled, model_registry.record, thresholds, LABEL, NAMES, served_of):
        served_verdicts[day.day] = (day.served.passed, _served_metadata(day.served))
        per_day[day.day] = {**_performance_metadata(day, thresholds), **_served_metadata(day.served),
                            **upload(day.day, day.result.snapshot)}
        if shadow is not None and day.day > shadow[0].challenger_since:
            per_day[day.day].update(shadow_metadata(*shadow, day.day))
        if canary is not None and day.day > canary[0].challenger_since:
            per_day[day.day].update(canary_metadata(*canary, day.day))
        watch_verdicts[day.day] = (True, NO_WATCH)
        if watch is not None and day.day in set(watch[2]["partition_date"]) and day.version == watch[0].version:
            watch_verdicts[day.day] = watch_metadata(*watch, day.day)
            per_day[day.day].update(watch_verdicts[day.day][1])
        verdicts[day.day] = _performance_check(day, thresholds)
        summary.append(day.summary_row())
    add_partition_metadata(context, per_day)
    yield from upload.checks()
    yield from partition_check_results(context, PERFORMANCE_CHECK, verdicts, severity=AssetCheckSeverity.WARN)
    yield from partition_check_results(context, SERVED_PERFORMANCE_CHECK, served_verdicts, severity=AssetCheckSeverity.WARN)
    yield from partition_check_results(context, ROLLBACK_CHECK, watch_verdicts, severity=AssetCheckSeverity.WARN)
    yield MaterializeResult(metadata={
        "days": MetadataValue.int(len(days)),
        "monitoring_dashboard": _dashboard_link(monitoring_workspace, upload),
        "days_degraded": MetadataValue.int(sum(r["degraded"] for r in summary)),
        "summary": _table(summary[-31:], PERFORMANCE_SUMMARY),
    })
