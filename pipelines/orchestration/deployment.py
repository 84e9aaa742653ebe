"""The jobs that move registry aliases by a person's (or a sensor's) decision, each recorded, and
the sensors that decide (`challenger_sensor`, `rollback_sensor`):

- `approve_challenger_job`: the waiting `challenger` becomes the champion (the old one keeps
  `previous`);
- `reject_challenger_job`: the `challenger` alias is removed (also how a challenger expires or
  loses its shadow days: `challenger_sensor`);
- `rollback_job`: `champion` back to a version (default `previous`); the version rolled back from
  is never restored by a rollback. `rollback_sensor` launches it when a new champion's rollback
  watch says so.

Who and why go on the version (`deploy.events`, shown by `flights-provenance`) and on
a `champion_model` materialization of the run (metadata `event`), which is what the UI, the
alerts and an audit read. A request that cannot be carried out (no challenger waits, an unknown
version, the champion itself, a challenger whose artifacts are missing) fails at once with a
message saying why, and no alias moves. No retry policy: each is a person's decision, and the
moves are checked before any is made.
"""


import contextlib

from dagster import (
    AssetKey,
    AssetMaterialization,
    AssetRecordsFilter,
    Config,
    DefaultSensorStatus,
    Definitions,
    MetadataValue,
    OpExecutionContext,
    ResourceParam,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    job,
    op,
    sensor,
)
from pydantic import Field

from assets.asset_factory import ALIAS_MOVES_POOL, DataFailure
from pipelines.orchestration.attempts import next_attempt
from pipelines.orchestration.jobs import runtime_limit
from pipelines.orchestration.policy import days_between
from pipelines.orchestration.sensors import SENSOR_INTERVAL_SECONDS, new_records, record_metadata, start_watching
from resources.registry import DeploymentRefused, ModelRegistry
from resources.settings import settings


class ChallengerDecision(Config):
    approver: str = Field(description="Who decides (recorded on the version).")
    reason: str = Field(description="Why (recorded on the version).")
    version: str | None = Field(default=None, description="The challenger version this decision is about; refused "
                                "if another one waits. Unset: whichever waits.")
    outcome: str = Field(default="rejected", description="reject_challenger_job only: `rejected`, `expired` (waited "
                         "too long) or `dropped` (lost its shadow days).")


class RollbackRequest(Config):
    reason: str = Field(description="Why the champion is rolled back (recorded on both versions).")
    target_version: str | None = Field(default=None, description="The version to serve again; unset: `previous`. Never "
                                       "the version just rolled back from, nor one rolled back before.")
    requested_by: str = Field(default="operator", description="Who asks for it (recorded).")
    expected_champion: str | None = Field(default=None, description="Refused (nothing moves) unless this version is the "
                                          "champion now: a decision about one champion never rolls back another.")


def _deployment_record(context: OpExecutionContext, model_registry: ResourceParam[ModelRegistry], event: str, version: str,
                       detail: dict[str, str]) -> AssetMaterialization:
    champion = model_registry.champion()
    return AssetMaterialization(asset_key=AssetKey("champion_model"), metadata={
        "event": MetadataValue.text(event),
        "champion": MetadataValue.text(champion.label if champion else "none"),
        "version": MetadataValue.text(version),
        **{k: MetadataValue.text(v) for k, v in detail.items()},
        "model_version_url": MetadataValue.url(model_registry.version_url(version)),
        "provenance": MetadataValue.text(f"flights-provenance {version}"),
    })


@contextlib.contextmanager
def _refusals_said():
    """A `DeploymentRefused` fails the step at once (no retry) with its message."""
    try:
        yield
    except DeploymentRefused as exc:
        raise DataFailure(str(exc)) from exc


@op(out={}, pool=ALIAS_MOVES_POOL, description="The waiting challenger becomes the champion; the old champion keeps `previous`.")
def approve_challenger(context: OpExecutionContext, config: ChallengerDecision, model_registry: ResourceParam[ModelRegistry]):
    with _refusals_said():
        approved, old = model_registry.approve_challenger(by=config.approver, reason=config.reason,
                                                          dagster_run_id=context.run_id, expected=config.version)
    context.log.info(f"champion: v{old} -> v{approved}, approved by {config.approver}: {config.reason}")
    context.log_event(_deployment_record(context, model_registry, "approved", approved, {
        "approver": config.approver, "reason": config.reason, "previous": old or "none"}))


@op(out={}, pool=ALIAS_MOVES_POOL, description="The waiting challenger loses its alias (rejected, expired or dropped).")
def reject_challenger(context: OpExecutionContext, config: ChallengerDecision, model_registry: ResourceParam[ModelRegistry]):
    if config.outcome not in ("rejected", "expired", "dropped"):
        raise DataFailure(f"outcome {config.outcome!r}: expected rejected, expired or dropped (nothing was moved)")
    with _refusals_said():
        rejected = model_registry.reject_challenger(by=config.approver, reason=config.reason, kind=config.outcome,
                                                    dagster_run_id=context.run_id, expected=config.version)
    context.log.info(f"challenger v{rejected} {config.outcome} by {config.approver}: {config.reason}")
    context.log_event(_deployment_record(context, model_registry, f"challenger_{config.outcome}", rejected, {
        "approver": config.approver, "reason": config.reason}))


@op(out={}, pool=ALIAS_MOVES_POOL, description="Move `champion` back to a version (default `previous`), with a reason.")
def rollback_champion(context: OpExecutionContext, config: RollbackRequest, model_registry: ResourceParam[ModelRegistry]):
    with _refusals_said():
        rolled_back, restored, previous = model_registry.rollback(
            config.target_version, by=config.requested_by, reason=config.reason, dagster_run_id=context.run_id,
            expected_current=config.expected_champion)
    context.log.info(f"champion: v{rolled_back} -> v{restored} ({config.reason}); `previous`: {previous or 'none'}")
    context.log_event(_deployment_record(context, model_registry, "rolled_back", restored, {
        "rolled_back_from": rolled_back, "requested_by": config.requested_by, "reason": config.reason,
        "previous": previous or "none"}))


@job(description="Approve the waiting challenger (config: approver, reason): it becomes the champion.",
     tags={"stage": "deployment", **runtime_limit("deployment")})
def approve_challenger_job():
    approve_challenger()


@job(description="Reject the waiting challenger (config: approver, reason): its alias is removed.",
     tags={"stage": "deployment", **runtime_limit("deployment")})
def reject_challenger_job():
    reject_challenger()


@job(description="Roll the deployed model back (config: reason, optional target_version; default `previous`).",
     tags={"stage": "deployment", **runtime_limit("deployment")})
def rollback_job():
    rollback_champion()


# --- the waiting challenger ---------------------------------------------------------------------

CHALLENGER_ENDED = ("approved", "challenger_rejected", "challenger_expired", "challenger_dropped", "challenger")


def waiting_challenger(instance) -> tuple[dict, int] | None:
    """The challenger waiting now, as the newest `champion_model` records say (no MLflow call in
    the sensor process): its metadata and record id, or None once it was decided or replaced."""
    records = instance.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey("champion_model")), limit=50).records
    for record in records:  # newest first
        meta = record_metadata(record)
        event = meta.get("event")
        if event == "challenger":
            return meta, record.storage_id
        if event in CHALLENGER_ENDED:
            return None
    return None


def newest_day(instance) -> str | None:
    """The newest day with features: the replay's (or the landing folder's) 'today'."""
    event = instance.get_latest_materialization_event(AssetKey("flight_features"))
    return None if event is None or event.asset_materialization is None else event.asset_materialization.partition


def _decision(instance, job, version: str, key: str, reason: str, **config) -> SensorResult | SkipReason:
    """The decision's run; asked again after a failed run (the key carries the attempt, `attempts.py`)."""
    attempt = next_attempt(instance, f"{key}:{version}")
    if attempt.run_key is None:
        return SkipReason(f"challenger v{version} waits for its {key} decision: {attempt.gave_up}")
    op = "approve_challenger" if job is approve_challenger_job else "reject_challenger"
    return SensorResult(run_requests=[RunRequest(
        run_key=attempt.run_key, job_name=job.name, tags={"challenger.version": version, "trigger": key, **attempt.tags},
        run_config={"ops": {op: {"config": {"version": version, "reason": reason, **config}}}})])


@sensor(
    jobs=[approve_challenger_job, reject_challenger_job],
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=DefaultSensorStatus.RUNNING,  # on: it acts only while a challenger waits
    description="A challenger waiting for approval expires (reject_challenger_job, outcome expired) once the newest "
    "day is more than FLIGHTS_CHALLENGER_EXPIRY_DAYS after the day it was trained up to. A shadow challenger is "
    "promoted (approve_challenger_job) or dropped (reject_challenger_job) when performance_report's shadow verdict "
    "after FLIGHTS_SHADOW_DAYS labelled days says so; a canary challenger likewise on its canary verdict (its live "
    "traffic after FLIGHTS_CANARY_DAYS labelled days), and it expires if no verdict came in time. Run key = the "
    "decision and the version.",
)
def challenger_sensor(context: SensorEvaluationContext):
    instance = context.instance
    found = waiting_challenger(instance)
    if found is None:
        return SkipReason("no challenger waits")
    meta, since_record = found
    version, mode, since = str(meta.get("challenger")), meta.get("promotion_mode"), meta.get("challenger_since")
    if mode in ("shadow", "canary"):
        for record in new_records(instance, "performance_report", since_record):
            m = record_metadata(record)
            if str(m.get(f"{mode}_challenger")) != version or m.get(f"{mode}_verdict") not in ("promote", "drop"):
                continue
            reason = f"{mode} verdict on {record.asset_materialization.partition}: {m.get(f'{mode}_reason')}"
            if m[f"{mode}_verdict"] == "promote":
                return _decision(instance, approve_challenger_job, version, mode, reason, approver=f"{mode}_verdict")
            return _decision(instance, reject_challenger_job, version, mode, reason, approver=f"{mode}_verdict",
                             outcome="dropped")
        if mode == "shadow":  # it scores every day: its verdict comes
            return SkipReason(f"shadow challenger v{version}: no verdict yet")
    today, expiry = newest_day(instance), settings().challenger_expiry_days
    if since and today and days_between(since, today) > expiry:
        reason = f"waited from {since} to {today}, more than FLIGHTS_CHALLENGER_EXPIRY_DAYS={expiry} days, without a decision"
        return _decision(instance, reject_challenger_job, version, "expiry", reason, approver="challenger_sensor",
                         outcome="expired")
    waits = "for its canary verdict (live traffic)" if mode == "canary" else "for approval"
    return SkipReason(f"challenger v{version} waits {waits} since {since} (newest day {today}; expires after "
                      f"{expiry} days)")


# --- the rollback watch ---------------------------------------------------------------------------

@sensor(
    jobs=[rollback_job],
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=DefaultSensorStatus.RUNNING,  # on: it acts only on a rollback verdict
    description="A new champion's rollback watch (performance_report, check champion_not_worse_than_previous) says it "
    "is worse than the version it replaced beyond the margin: rollback_job moves `champion` back to that version, "
    "with the watch's figures as the reason, and refuses if the champion has moved since. Run key = the version "
    "rolled back from.",
)
def rollback_sensor(context: SensorEvaluationContext):
    instance = context.instance
    if context.cursor is None:
        return start_watching(instance, "performance_report")
    records = new_records(instance, "performance_report", int(context.cursor))
    if not records:
        return SkipReason(f"no new performance_report since record {context.cursor}")
    cursor = str(records[-1].storage_id)
    for record in records:
        m = record_metadata(record)
        if m.get("watch_verdict") != "rollback":
            continue
        champion, previous = str(m["watch_champion"]), str(m["watch_previous"])
        attempt = next_attempt(instance, f"rollback-watch:{champion}")
        if attempt.run_key is None:
            return SensorResult(skip_reason=SkipReason(f"v{champion} to roll back: {attempt.gave_up}"), cursor=cursor)
        reason = f"rollback watch on {record.asset_materialization.partition}: {m.get('watch_reason')}"
        return SensorResult(cursor=cursor, run_requests=[RunRequest(
            run_key=attempt.run_key, job_name=rollback_job.name,
            tags={"rollback.from": champion, "trigger": "rollback_watch", **attempt.tags},
            run_config={"ops": {"rollback_champion": {"config": {
                "reason": reason, "target_version": previous, "expected_champion": champion,
                "requested_by": "rollback_watch"}}}})])
    watching = [record_metadata(r) for r in records if record_metadata(r).get("watch_verdict")]
    said = f"; v{watching[-1]['watch_champion']}: {watching[-1]['watch_verdict']}" if watching else ""
    return SensorResult(skip_reason=SkipReason(f"no rollback verdict in {len(records)} new report(s){said}"), cursor=cursor)


defs = Definitions(jobs=[rollback_job, approve_challenger_job, reject_challenger_job],
                   sensors=[challenger_sensor, rollback_sensor])
