"""Retention of superseded data versions: `data_retention_job` and its weekly schedule.

A day ingested, validated or built again keeps the version it replaced (`day_versions` and the
`_history` tables), so that any model can be rebuilt from what it read. The job deletes the rows
of superseded versions that stopped being current more than FLIGHTS_DATA_RETENTION_DAYS ago and
that no registered model version uses -- directly (the `flight_features` versions on the version,
tag `data.version_ids`) or through what those were built from (validated and raw versions). A
current version is never deleted; a deleted version keeps its catalog row (`deleted_at`), so a
day's history still shows it and reproducing a model that needed it names the day.
"""

from datetime import UTC, datetime

from dagster import (
    Config,
    DefaultScheduleStatus,
    Definitions,
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
from resources.registry import ModelRegistry
from resources.settings import settings
from resources.warehouse import Warehouse


class RetentionConfig(Config):
    keep_days: float | None = Field(default=None, description="Keep superseded versions this many days after they "
                                    "stopped being current. Unset: FLIGHTS_DATA_RETENTION_DAYS (90).")
    dry_run: bool = Field(default=False, description="List what would be deleted; delete nothing.")


def apply_retention(warehouse: Warehouse, registry: ModelRegistry, keep_days: float, dry_run: bool = False,
                    now: datetime | None = None) -> dict:
    """Delete (or, dry, list) the superseded versions past `keep_days` that no model uses."""
    catalog = warehouse.versions()
    usage = model_usage(registry.versions(), catalog)  # read before deleting: an unreadable registry deletes nothing
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
    result = apply_retention(warehouse, model_registry, keep, config.dry_run)
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
