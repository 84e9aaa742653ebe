"""Retention of superseded data versions: `data_retention_job` and its weekly schedule.

A day ingested, validated or built again keeps the version it replaced (`day_versions` and the
`_history` tables), so that any model can be rebuilt from what it read. The job deletes the rows
of superseded versions that stopped being current more than FLIGHTS_DATA_RETENTION_DAYS ago and
that no registered model version uses -- directly (the `flight_features` versions on the version,
tag `data.version_ids`) or through what those were built from (validated and raw versions). A
current version is never deleted; a deleted version keeps its catalog row (`deleted_at`), so a
day's history still shows it and reproducing a model that needed it names the day.

The versions a retrain recorded on its MLflow run before its candidate is registered are kept
too (the run's window, until the run is tagged `registered.version`). The job deletes nothing
when the registry cannot tell what models use: one the warehouse's versions were not recorded
against (`model_registries`, the registry's id from its experiment's tag), or one that knows no
model and no retrain while superseded versions exist (an unset MLFLOW_TRACKING_URI falls back to
a new local store).
"""

from datetime import UTC, datetime

from dagster import (
    Config,
    DefaultScheduleStatus,
    Definitions,
    Failure,
    MetadataValue,
    OpExecutionContext,
    Output,
    ResourceParam,
    ScheduleDefinition,
    job,
    op,
)
from pydantic import Field

from assets.asset_factory import table_metadata
from assets.day_history import model_usage, retention_candidates
from resources.errors import DataProblem
from resources.registry import ModelRegistry
from resources.settings import settings
from resources.warehouse import Warehouse


class RetentionConfig(Config):
    keep_days: float | None = Field(default=None, description="Keep superseded versions this many days after they "
                                    "stopped being current. Unset: FLIGHTS_DATA_RETENTION_DAYS (90).")
    dry_run: bool = Field(default=False, description="List what would be deleted; delete nothing.")
    allow_empty_registry: bool = Field(default=False, description="Delete although the MLflow registry knows no "
                                       "model and no retrain: only for a warehouse no model was ever trained on.")


class RetentionRefused(DataProblem):
    """The registry cannot tell which versions models need (empty, or not the warehouse's): nothing
    is deleted. Retrying cannot fix it: MLFLOW_TRACKING_URI (or WAREHOUSE_URL) has to."""


def check_registry(warehouse: Warehouse, registry: ModelRegistry, catalog, records, retrains,
                   allow_empty_registry: bool = False) -> None:
    """Refuse (`RetentionRefused`, naming both stores, no password) to decide what models use
    from a registry that is not the one the warehouse's versions were recorded against, or that
    knows no model and no retrain while the warehouse holds superseded versions."""
    superseded = int((catalog["superseded_at"].notna() & catalog["deleted_at"].isna()).sum())
    if not superseded:
        return  # nothing could be deleted
    where = (f"the MLflow registry {registry.display_tracking_uri}", f"the warehouse {warehouse.display_url}")
    tail = (f"; {superseded} superseded version(s) kept, nothing was deleted. Set MLFLOW_TRACKING_URI to the registry "
            "the warehouse's models are in")
    recorded, identity = warehouse.registries(), registry.registry_id()
    if recorded and identity not in recorded:
        known = ", ".join(f"{rid} at {uri}" for rid, uri in recorded.items())
        raise RetentionRefused(f"refusing to delete data versions: {where[0]} (registry id {identity or 'none'}) is not "
                               f"one the versions of {where[1]} were recorded against ({known}){tail}")
    if not records and not retrains and not allow_empty_registry:
        raise RetentionRefused(f"refusing to delete data versions: {where[0]} knows no model version and no retrain, "
                               f"while {where[1]} holds superseded versions models may need{tail}, or run with "
                               "allow_empty_registry: true if no model was ever trained on this warehouse")
    named = {vid for w in [r.window for r in records] + list(retrains.values()) for vid in w.version_ids.values()}
    if not recorded and named and named.isdisjoint(set(catalog["version_id"])):  # a warehouse that recorded no registry yet
        raise RetentionRefused(f"refusing to delete data versions: the models of {where[0]} name {len(named)} data "
                               f"version(s), none of which {where[1]} holds: they were trained on another "
                               f"warehouse{tail}")


def apply_retention(warehouse: Warehouse, registry: ModelRegistry, keep_days: float, dry_run: bool = False,
                    now: datetime | None = None, allow_empty_registry: bool = False) -> dict:
    """Delete (or, dry, list) the superseded versions past `keep_days` that no model uses (nor a
    retrain recorded but not registered yet); refuse against a registry that cannot tell."""
    catalog = warehouse.versions()
    # read before deleting: an unreadable registry deletes nothing
    records = registry.versions()
    retrains = {run: window for run, (window, registered) in registry.recorded_windows().items() if not registered}
    check_registry(warehouse, registry, catalog, records, retrains, allow_empty_registry)
    usage = model_usage(records, catalog, retrains)
    doomed = retention_candidates(catalog, usage, keep_days, now or datetime.now(UTC))
    rows_deleted = 0 if dry_run or doomed.empty else warehouse.delete_versions(doomed)
    superseded = catalog["superseded_at"].notna() & catalog["deleted_at"].isna()
    kept_for_models = catalog[superseded & catalog["version_id"].isin(list(usage))]
    return {
        "versions": doomed[["asset", "partition_date", "version_id", "superseded_at"]].to_dict("records"),  # deleted, or to be
        "rows_deleted": int(rows_deleted),
        "superseded_kept_for_models": [{**r, "used_by": ", ".join(usage[r["version_id"]])} for r in
                                       kept_for_models[["asset", "partition_date", "version_id"]].to_dict("records")],
        "current_versions": int((catalog["superseded_at"].isna()).sum()),
    }


@op(description="Delete the rows of superseded day versions older than the retention that no registered model "
    "version uses (never a current version), and record what was deleted and what was kept for which model.")
def delete_unused_data_versions(context: OpExecutionContext, config: RetentionConfig, warehouse: ResourceParam[Warehouse],
                                model_registry: ResourceParam[ModelRegistry]):
    keep = settings().data_retention_days if config.keep_days is None else config.keep_days
    try:
        result = apply_retention(warehouse, model_registry, keep, config.dry_run,
                                 allow_empty_registry=config.allow_empty_registry)
    except RetentionRefused as exc:
        raise Failure(description=str(exc), allow_retries=False) from exc
    listed = result["versions"]
    context.log.info(f"{'would delete' if config.dry_run else 'deleted'} {len(listed)} superseded version(s) "
                     f"({result['rows_deleted']} rows); kept {len(result['superseded_kept_for_models'])} for models")
    yield Output(None, metadata={
        "keep_days": MetadataValue.float(float(keep)),
        "dry_run": MetadataValue.bool(config.dry_run),
        "versions_deleted" if not config.dry_run else "versions_to_delete": MetadataValue.int(len(listed)),
        "rows_deleted": MetadataValue.int(result["rows_deleted"]),
        "deleted": table_metadata(listed[:200], dict.fromkeys(["asset", "partition_date", "version_id", "superseded_at"], "string")),
        "kept_for_models": table_metadata(result["superseded_kept_for_models"][:200],
                                          dict.fromkeys(["asset", "partition_date", "version_id", "used_by"], "string")),
        "current_versions": MetadataValue.int(result["current_versions"]),
    })


@job(description="Delete superseded data versions past FLIGHTS_DATA_RETENTION_DAYS that no registered model "
     "version uses; current versions and the versions models were trained on stay.", tags={"stage": "data"})
def data_retention_job():
    delete_unused_data_versions()


data_retention_schedule = ScheduleDefinition(
    name="data_retention_schedule",
    job=data_retention_job,
    cron_schedule="0 5 * * 0",
    execution_timezone="America/New_York",
    # off on a fresh clone: deleting data is the team's decision (the job runs by hand any time)
    default_status=DefaultScheduleStatus.STOPPED,
    description="Every Sunday, data_retention_job with the default retention (FLIGHTS_DATA_RETENTION_DAYS).",
)


defs = Definitions(jobs=[data_retention_job], schedules=[data_retention_schedule])
