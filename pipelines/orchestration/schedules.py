"""Schedules (both off on a fresh clone; see each one's reason).

'Today' is the replay clock's day (`pipelines.orchestration.sensors.replay_today`): the day after the newest
day with features, from FLIGHTS_REPLAY_START on.
"""

from dagster import DefaultScheduleStatus, Definitions, RunRequest, ScheduleEvaluationContext, SkipReason, schedule

from assets.common import previous_day
from pipelines.orchestration.attempts import next_attempt
from pipelines.orchestration.jobs import ingest_job, retrain_job
from pipelines.orchestration.policy import retrain_due
from pipelines.orchestration.sensors import last_retrain_day, replay_today, retrain_request
from resources.records import RetrainTrigger
from resources.settings import settings


@schedule(
    job=ingest_job,
    cron_schedule="0 6 * * *",
    execution_timezone="America/New_York",
    # off: starting it replays 2013 into the warehouse one day per real day
    default_status=DefaultScheduleStatus.STOPPED,
    description="Every morning, ingest the replay's 'today' (the day after the newest day with "
    "features). One run per day: the run key is the day (and the attempt, after a failed run).",
)
def daily_ingestion_schedule(context: ScheduleEvaluationContext):
    day = replay_today(context.instance)
    if day is None:
        return SkipReason("every day of the replay has been ingested")
    attempt = next_attempt(context.instance, f"ingest-{day}")  # again after a failed run, bounded
    if attempt.run_key is None:
        return SkipReason(attempt.gave_up)
    return RunRequest(run_key=attempt.run_key, partition_key=day,
                      tags={**RetrainTrigger(kind="daily_ingestion_schedule").tags(), **attempt.tags})


@schedule(
    job=retrain_job,
    cron_schedule="0 7 * * 1",
    execution_timezone="America/New_York",
    # off: a fresh clone has no data to train on, and whether to retrain on the calendar as well
    # as on the sensors' evidence is the team's choice (the closed-loop replay compares both)
    default_status=DefaultScheduleStatus.STOPPED,
    description="Every Monday, retrain on the window ending yesterday (replay clock), unless a "
    "retrain as of the last FLIGHTS_RETRAIN_EVERY_DAYS (default 7) days exists.",
)
def periodic_retrain_schedule(context: ScheduleEvaluationContext):
    today = replay_today(context.instance)
    yesterday = previous_day(today) if today else None
    if yesterday is None:
        return SkipReason("no day with features yet")
    last, every = last_retrain_day(context.instance), settings().retrain_every_days
    if not retrain_due(yesterday, last, every):
        return SkipReason(f"the last retrain (as of {last}) is less than {every} days old")
    request = retrain_request(RetrainTrigger(kind="periodic_retrain_schedule", reason=f"periodic retrain every {every} days",
                                             as_of=yesterday), context.instance)
    return request or SkipReason(f"periodic retrain as of {yesterday}: given up after failed runs (attempts.py)")


defs = Definitions(schedules=[daily_ingestion_schedule, periodic_retrain_schedule])
