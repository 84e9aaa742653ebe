"""The jobs that move registry aliases by a person's (or a sensor's) decision, each recorded:

- `approve_challenger_job`: the waiting `challenger` becomes the champion (the old one keeps
  `previous`);
- `reject_challenger_job`: the `challenger` alias is removed (also how a challenger expires or
  loses its shadow days: `challenger_sensor`);
- `rollback_job`: `champion` back to a version (default `previous`); the version rolled back from
  is never restored by a rollback.

Who and why go on the version (`deploy.events`, shown by `flights-provenance`) and on
a `champion_model` materialization of the run (metadata `event`), which is what the UI, the
alerts and an audit read. A request that cannot be carried out (no challenger waits, an unknown
version, the champion itself, a challenger whose artifacts are missing) fails at once with a
message saying why, and no alias moves. No retry policy: each is a person's decision, and the
moves are checked before any is made.
"""


import contextlib

from dagster import AssetKey, AssetMaterialization, Config, Definitions, MetadataValue, OpExecutionContext, ResourceParam, job, op
from pydantic import Field

from assets.asset_factory import ALIAS_MOVES_POOL, DataFailure
from pipelines.orchestration.jobs import runtime_limit
from resources.registry import DeploymentRefused, ModelRegistry


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
            config.target_version, by=config.requested_by, reason=config.reason, dagster_run_id=context.run_id)
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


defs = Definitions(jobs=[rollback_job, approve_challenger_job, reject_challenger_job])
