"""Alerts: the sensors that tell people what happened (resources/alerts.py delivers them).

- `run_failure_alert` (Dagster's run-failure sensor): any failed run of this code location,
  with the failing steps' errors; a day blocked by a validation check is said as such (which
  check, which day; the error names the file and the column).
- `retrain_started_alert` (a run-status sensor on `retrain_job` starting): a retrain requested
  by a sensor or a schedule, with its reason.
- `verdict_alert`: each new `drift_report` / `performance_report` day with dataset drift or
  degraded performance, each day flagged as a broken feed (a WARN feed check failed: "feed
  incident, not retraining"), each day whose served requests were stale
  (`served_requests_current`), and each `champion_model` event (promoted, rejected by the gate,
  a challenger waiting, approved, rejected / expired / dropped, rolled back).

Each message names the asset, the partition or the model version and links to the Dagster run
(FLIGHTS_DAGSTER_UI_URL). Delivery is retried with backoff and never fails a run or a tick;
when every channel still refuses a verdict alert, `verdict_alert` keeps its cursor before it and
tries again at the next tick (delayed, not lost). With no channel configured
(FLIGHTS_ALERT_WEBHOOK_URL, FLIGHTS_SMTP_HOST) nothing is sent.

Every tick ends within Dagster's 60 s sensor timeout, whatever the channels do (a tick that
times out saves no cursor, and its alerts would go out again at every tick): one alert's delivery
gives up after FLIGHTS_ALERT_SECONDS; `run_failure_alert` takes at most 5 runs a tick (Dagster's
process limit), its cursor kept by Dagster after each; `verdict_alert` starts no delivery once
fewer than FLIGHTS_ALERT_SECONDS of its FLIGHTS_ALERT_TICK_SECONDS remain or after
FLIGHTS_ALERT_TICK_MAX alerts, and saves its cursor after the last record delivered: the rest
goes out at the next tick, each record once.
"""

import json
import time

from dagster import (
    DagsterEventType,
    DagsterRunStatus,
    DefaultSensorStatus,
    Definitions,
    RunFailureSensorContext,
    RunStatusSensorContext,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    run_failure_sensor,
    run_status_sensor,
    sensor,
)

from assets.deployment.logic import challenger_waits
from pipelines.orchestration.attempts import attempt_note
from pipelines.orchestration.jobs import retrain_job
from pipelines.orchestration.sensors import SENSOR_INTERVAL_SECONDS, new_records, newest_storage_id, record_metadata
from resources.alerts import Alert, configured, send
from resources.settings import settings

WATCHED = ("champion_model", "drift_report", "performance_report")


def run_url(run_id: str) -> str:
    return f"{settings().dagster_ui_url}/runs/{run_id}"


def deliver(context, alert: Alert) -> tuple[str, bool]:
    """Send, log what failed; what happened (for the tick's record) and whether any channel took it."""
    if not configured():
        return f"not sent (no alert channel configured): {alert.title}", True
    deliveries = send(alert)
    for d in deliveries:
        if not d.ok:
            context.log.warning(f"alert '{alert.title}' not delivered by {d.channel} after {d.attempts} attempts: {d.error}")
    said = f"{alert.title}: " + ", ".join(f"{d.channel} {'sent' if d.ok else 'FAILED'}" for d in deliveries)
    return said, any(d.ok for d in deliveries)


def _partitions(tags) -> str:
    if "dagster/partition" in tags:
        return tags["dagster/partition"]
    start, end = tags.get("dagster/asset_partition_range_start"), tags.get("dagster/asset_partition_range_end")
    return f"{start}...{end}" if start else ""


def _failed_checks(instance, run_id: str) -> list[str]:
    """The blocking checks that failed in the run: `asset check (day)`."""
    records = instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION, limit=5000).records
    out = []
    for r in records:
        evaluation = r.event_log_entry.dagster_event.event_specific_data
        if not evaluation.passed and evaluation.blocking:
            out.append(f"{evaluation.asset_key.to_user_string()} check `{evaluation.check_name}`"
                       + (f" ({evaluation.partition})" if evaluation.partition else ""))
    return out


def failure_alert(context: RunFailureSensorContext) -> Alert:
    run = context.dagster_run
    partitions = _partitions(run.tags)
    errors = [f"{e.step_key}: {(e.event_specific_data.error.message if e.event_specific_data.error else '').strip()[:600]}"
              for e in context.get_step_failure_events()]
    checks = _failed_checks(context.instance, run.run_id)
    fields = {"job": run.job_name, "run_id": run.run_id, **({"partition": partitions} if partitions else {})}
    note = attempt_note(context.instance, run)  # a requested run: attempt k of N, and whether it gives up
    more = (note,) if note else ()
    if checks:
        return Alert("blocked_day", f"Blocked day {partitions}: {checks[0]} failed" + (f" (+{len(checks) - 1})" if len(checks) > 1 else ""),
                     tuple([*checks[:10], *errors[:3], *more]), run_url(run.run_id), "error", fields)
    return Alert("run_failed", f"Run failed: {run.job_name}" + (f" {partitions}" if partitions else ""),
                 tuple(errors[:5] or [context.failure_event.message or "the run failed"]) + more, run_url(run.run_id), "error",
                 fields)


@run_failure_sensor(
    name="run_failure_alert",
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=DefaultSensorStatus.RUNNING,  # on: it sends nothing unless an alert channel is set
    # a run launched from the CLI (`dg launch`, `dagster asset materialize`: CI, cron) runs in the
    # CLI's process and has no code-location origin; without this Dagster skips it as "another
    # location's" and its failure reaches nobody. The instance is the pipeline's.
    monitor_all_code_locations=True,
    description="Alerts on every failed run of this Dagster instance, the CLI's included (FLIGHTS_ALERT_WEBHOOK_URL, "
    "FLIGHTS_SMTP_HOST): the failing steps and their errors; a day blocked by a validation check names the check and the day.",
)
def run_failure_alert(context: RunFailureSensorContext):
    context.log.info(deliver(context, failure_alert(context))[0])


def retrain_alert(context: RunStatusSensorContext) -> Alert | None:
    run = context.dagster_run
    trigger = run.tags.get("trigger", "manual")
    if trigger == "manual":
        return None  # a person started it and knows
    reason = run.tags.get("trigger.reason", "")
    event = run.tags.get("trigger.asset")
    lines = [f"reason: {reason}"] if reason else []
    if event:
        lines.append(f"event: {event} {run.tags.get('trigger.partition', '')} (run {run.tags.get('trigger.run_id', '')})")
    return Alert("retrain_requested", f"Retrain requested by {trigger}" + (f", as of {run.tags['retrain.as_of']}"
                                                                           if "retrain.as_of" in run.tags else ""),
                 tuple(lines), run_url(run.run_id), "info", {"job": run.job_name, "run_id": run.run_id, "trigger": trigger})


@run_status_sensor(
    name="retrain_started_alert",
    run_status=DagsterRunStatus.STARTED,
    monitored_jobs=[retrain_job],
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=DefaultSensorStatus.RUNNING,
    description="Alerts when a retrain requested by a sensor or a schedule starts, with its reason.",
)
def retrain_started_alert(context: RunStatusSensorContext):
    alert = retrain_alert(context)
    if alert is not None:
        context.log.info(deliver(context, alert)[0])


def verdict_alert_of(asset: str, record) -> Alert | None:
    """The alert a new record of a watched asset calls for, or None."""
    meta, day, run_id = record_metadata(record), record.asset_materialization.partition, record.run_id
    link, fields = run_url(run_id), {"asset": asset, "run_id": run_id}
    if day:
        fields["partition"] = day
    if asset == "drift_report" and meta.get("feed_incident"):  # once a day, whatever the verdicts (not from performance_report)
        drifted = "; its drift is not acted on" if meta.get("dataset_drift") or meta.get("served_dataset_drift") else ""
        return Alert("feed_incident", f"Feed incident on {day}: not retraining ({', '.join(meta.get('feed_checks') or [])})",
                     (*str(meta["feed_incident"]).splitlines()[:6],
                      f"the day is left out of training and of the retrain sensors' decisions{drifted}; after review: "
                      f"release_day_job (day {day}, reason) takes it back"), link, "error", fields)
    if asset == "performance_report" and meta.get("feed_incident"):
        return None  # said by the day's drift_report
    if asset == "drift_report":
        served, stale = meta.get("served_dataset_drift") is True, meta.get("served_stale")
        if stale and not meta.get("dataset_drift") and not served:  # served traffic only: the batch day stands
            return Alert("served_stale", f"Stale served requests on {day} (drift_report)", (
                str(stale), f"served drift share {meta.get('served_drift_share', 'not judged')}; model "
                f"v{meta.get('model_version')}"), link, "warning", fields)
        if not meta.get("dataset_drift") and not served:
            return None
        lines = [f"{meta.get('drifted_columns')} of {meta.get('monitored_columns')} monitored columns drifted "
                 f"(share {meta.get('drift_share')} >= {meta.get('drift_share_threshold')}); model v{meta.get('model_version')}"]
        if served:
            lines.append(f"served traffic drifted too: share {meta.get('served_drift_share')} over {meta.get('served_rows')} flights")
        if stale:
            lines.append(f"stale served requests: {stale}")
        if isinstance(meta.get("report"), str) and meta["report"].startswith("http"):
            lines.append(f"report: {meta['report']}")
        return Alert("drift", f"Dataset drift on {day} (drift_report)", tuple(lines), link, "warning",
                     {**fields, "model_version": str(meta.get("model_version"))})
    if asset == "performance_report":
        served = meta.get("served_performance_degraded") is True
        if not meta.get("performance_degraded") and not served:
            return None
        lines = [f"trailing ROC AUC {meta.get('trailing_roc_auc')} is {meta.get('roc_auc_drop')} below the evaluation's "
                 f"{meta.get('evaluation_roc_auc')} (threshold {meta.get('roc_auc_drop_threshold')}); model v{meta.get('model_version')}"]
        if meta.get("served_verdict"):  # what the scoring server answered by flight, against the same floor
            lines.append(f"what was served: {meta['served_verdict']}")
        title = "Degraded performance" if meta.get("performance_degraded") else "Degraded served performance"
        return Alert("degraded", f"{title} on {day} (performance_report)", tuple(lines), link, "warning",
                     {**fields, "model_version": str(meta.get("model_version"))})
    event = meta.get("event") or ("promoted" if meta.get("promoted") else "rejected")
    version = str(meta.get("candidate_version") or meta.get("version") or "")
    fields["model_version"] = version
    reasons = tuple(line.lstrip("- ").strip() for line in str(meta.get("reasons") or "").splitlines() if line.strip())
    said = {
        "promoted": (f"Promoted v{version}: champion now", "info"),
        "rejected": (f"Candidate v{version} rejected by the gate; the champion stays", "info"),
        "challenger": (f"Challenger v{version} waiting ({meta.get('promotion_mode')})", "warning"),
        "approved": (f"Challenger v{version} approved by {meta.get('approver')}: champion now", "info"),
        "challenger_rejected": (f"Challenger v{version} rejected by {meta.get('approver')}", "info"),
        "challenger_expired": (f"Challenger v{version} expired", "warning"),
        "challenger_dropped": (f"Challenger v{version} dropped by {meta.get('approver')}", "info"),
        "rolled_back": (f"Rollback: v{meta.get('rolled_back_from')} -> v{version}", "warning"),
    }
    if event not in said:
        return None
    title, severity = said[event]
    lines = list(reasons[:6])
    if meta.get("reason"):
        lines.append(f"reason: {meta['reason']}")
    if event == "challenger":
        lines.append(challenger_waits(str(meta.get("promotion_mode"))))
    if event == "rolled_back":
        lines.append(f"requested by {meta.get('requested_by')}; previous now: {meta.get('previous')}")
    lines.append(f"champion: {meta.get('champion')}")
    for key in ("model_version_url", "model_card_url"):
        if isinstance(meta.get(key), str):
            lines.append(f"{key.removesuffix('_url').replace('_', ' ')}: {meta[key]}")
    return Alert(event, title, tuple(lines), link, severity, fields)


@sensor(
    name="verdict_alert",
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=DefaultSensorStatus.RUNNING,  # on: it sends nothing unless an alert channel is set
    description="Alerts on each new day with dataset drift (drift_report) or degraded performance "
    "(performance_report), and on each champion_model event: promotion, rejection by the gate, a challenger "
    "waiting, approval, rejection / expiry / drop of a challenger, rollback.",
)
def verdict_alert(context: SensorEvaluationContext):
    instance = context.instance
    if context.cursor is None:  # turned on: history is not alerted on
        cursor = {a: newest_storage_id(instance, a) for a in WATCHED}
        return SensorResult(skip_reason=SkipReason(f"watching from {cursor}"), cursor=json.dumps(cursor))
    cursor = json.loads(context.cursor)
    said, s, started, sent = [], settings(), time.monotonic(), 0
    for asset in WATCHED:
        for record in new_records(instance, asset, int(cursor.get(asset, 0)), limit=200):
            alert = verdict_alert_of(asset, record)
            if alert is not None:
                spent = time.monotonic() - started
                if configured() and sent and (sent >= s.alert_tick_max or spent > s.alert_tick_seconds - s.alert_seconds):
                    said.append(f"{sent} alerts in {spent:.1f} s (FLIGHTS_ALERT_TICK_MAX={s.alert_tick_max}, "
                                f"FLIGHTS_ALERT_TICK_SECONDS={s.alert_tick_seconds:g}): {asset} from record {record.storage_id} "
                                "on at the next tick")
                    return SensorResult(skip_reason=SkipReason("; ".join(said)[-1500:]), cursor=json.dumps(cursor))
                sent += 1
                text, taken = deliver(context, alert)
                said.append(text)
                if not taken:  # every channel failed after its retries: this record again at the next tick
                    said.append(f"{asset} from record {record.storage_id} on: again at the next tick")
                    return SensorResult(skip_reason=SkipReason("; ".join(said)[-1500:]), cursor=json.dumps(cursor))
            cursor[asset] = record.storage_id
    skip = "; ".join(said)[:1500] if said else "nothing to alert on"
    return SensorResult(skip_reason=SkipReason(skip), cursor=json.dumps(cursor))


defs = Definitions(sensors=[run_failure_alert, retrain_started_alert, verdict_alert])
