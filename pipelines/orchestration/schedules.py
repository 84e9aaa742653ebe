"""Schedules (both off on a fresh clone; see each one's reason).

'Today' is the replay clock's day (`pipelines.orchestration.sensors.replay_today`): the day after the newest
day with features, from FLIGHTS_REPLAY_START on.
"""

from dagster import DefaultScheduleStatus, Definitions, RunRequest, ScheduleEvaluationContext, SkipReason, schedule

from assets.common import previous_day
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
    "features). One run per day: the run key is the day.",
)
def daily_ingestion_schedule(context: ScheduleEvaluationContext):
    day = replay_today(context.instance)
    if day is None:
        return SkipReason("every day of the replay has been ingested")
    return RunRequest(run_key=f"ingest-{day}", partition_key=day, tags=RetrainTrigger(kind="daily_ingestion_schedule").tags())


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
    return retrain_request(RetrainTrigger(kind="periodic_retrain_schedule", reason=f"periodic retrain every {every} days",
                                          as_of=yesterday))


defs = Definitions(schedules=[daily_ingestion_schedule, periodic_retrain_schedule])
