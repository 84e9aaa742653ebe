"""Schedules. The daily ingestion replays the data one day per tick."""

from dagster import (
    AssetKey,
    DefaultScheduleStatus,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from assets.partitions import daily_partitions
from pipelines.jobs import ingest_job


def next_day_to_ingest(materialized: set[str], all_days: list[str]) -> str | None:
    """The first day after the last one whose features were built (the replay's 'today')."""
    done = [d for d in all_days if d in materialized]
    if not done:
        return all_days[0]
    later = [d for d in all_days if d > done[-1]]
    return later[0] if later else None


@schedule(
    job=ingest_job,
    cron_schedule="0 6 * * *",
    execution_timezone="America/New_York",
    # Off on a fresh clone: starting it replays 2013 into the warehouse one day per tick.
    default_status=DefaultScheduleStatus.STOPPED,
    description="Every morning, ingest the next day of the replay (the first day after the last "
    "one with features). One run per day: the run key is the day.",
)
def daily_ingestion_schedule(context: ScheduleEvaluationContext):
    materialized = context.instance.get_materialized_partitions(AssetKey("flight_features"))
    day = next_day_to_ingest(set(materialized), daily_partitions.get_partition_keys())
    if day is None:
        return SkipReason("every day of the replay has been ingested")
    return RunRequest(run_key=f"ingest-{day}", partition_key=day, tags={"trigger": "daily_ingestion_schedule"})
