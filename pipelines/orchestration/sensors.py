"""Sensors: what starts runs by itself.

- `drift_sensor`, `performance_sensor`: read the verdicts that `drift_report` and
  `performance_report` record per day and request `retrain_job` (trained up to that day); not
  for a day flagged as a broken feed (its report's `feed_incident`): "feed incident, not retraining".
  One event, one retrain: the run key is the day; the cursor is the newest report record seen,
  so a restart repeats nothing; the cooldown (in replayed days) keeps retrains apart. The retrain
  run's tags name the triggering report (asset, day, record, run, reason) and the candidate's
  MLflow run and registry version carry them on.
- `monitor_sensor`: once a day's features exist and a model is deployed, scores the day and
  builds its drift and performance reports (`monitor_job`); not for a day `day_job` built, which
  reports the day in the same run (unless that run failed).
- `landing_sensor`: a new or changed daily file in FLIGHTS_LANDING_DIR ingests that day, once it
  is settled (the same size and mtime at two ticks in a row: a file still being copied waits).
- `replay_clock_sensor`: accelerated replay of 2013, one day per tick (off by default): `day_job`
  once a model is deployed (the day ingested, scored and reported in one run), else `ingest_job`.
- the sensors that decide deployments (`challenger_sensor`, `rollback_sensor`):
  pipelines/orchestration/deployment.py.

Every sensor starts watching from the newest record when it is first turned on (its first tick
sets the cursor): turning a sensor on never acts on old history.
"""


from dagster import (
    AssetKey,
    AssetPartitionStatus,
    AssetRecordsFilter,
    DagsterRunStatus,
    DefaultSensorStatus,
    Definitions,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from assets.asset_factory import daily_partitions
from assets.common import partition_days, previous_day
from pipelines.orchestration.attempts import again_after_failure, next_attempt
from pipelines.orchestration.jobs import day_job, ingest_job, monitor_job, retrain_job
from pipelines.orchestration.policy import drift_reason, in_cooldown, performance_reason, retrain_due
from resources.records import RetrainTrigger, Tag
from resources.settings import settings
from resources.source_files import LandingLook, landing_files

NOT_FAILED = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
              DagsterRunStatus.STARTED, DagsterRunStatus.SUCCESS]
IN_FLIGHT = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
             DagsterRunStatus.STARTED]

# how often the sensors tick: a definition-time setting (the daemon reads it when it loads the code)
SENSOR_INTERVAL_SECONDS = settings().sensor_interval_seconds


# --- shared helpers ----------------------------------------------------------------------------

def trained_up_to(run) -> str | None:
    """The day a retrain run was trained up to: its tag (sensors, schedules), else the `end_day`
    of its config (a retrain launched by hand or from the CLI); None for 'the newest day'."""
    if Tag.AS_OF in run.tags:
        return run.tags[Tag.AS_OF]
    config = ((run.run_config or {}).get("ops", {}).get("training_set", {}) or {}).get("config", {}) or {}
    return config.get("end_day") or None


def last_retrain_day(instance) -> str | None:
    """The newest day a retrain (queued, running or done; not failed) was trained up to."""
    runs = instance.get_runs(RunsFilter(job_name=retrain_job.name, statuses=NOT_FAILED), limit=200)
    return max(filter(None, map(trained_up_to, runs)), default=None)


def retrain_request(trigger: RetrainTrigger, instance=None) -> RunRequest | None:
    """A retrain trained up to the trigger's day, tagged with what triggered it (the candidate
    copies the tags onto its MLflow run and registry version). With the instance: asked again
    after a failed run (the key carries the attempt), None once given up (`attempts.py`)."""
    key, tags = f"{trigger.kind}:{trigger.as_of}", {}
    if instance is not None:
        attempt = next_attempt(instance, key)
        if attempt.run_key is None:
            return None
        key, tags = attempt.run_key, attempt.tags
    return RunRequest(
        run_key=key,
        job_name=retrain_job.name,
        run_config={"ops": {"training_set": {"config": {"end_day": trigger.as_of}}}},
        tags={**trigger.tags(), **tags},
    )


def newest_storage_id(instance, asset: str) -> int:
    records = instance.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey(asset)), limit=1).records
    return records[0].storage_id if records else 0


def new_records(instance, asset: str, after: int, limit: int = 500):
    return instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(asset), after_storage_id=after), limit=limit, ascending=True
    ).records


def start_watching(instance, asset: str) -> SensorResult:
    """The first tick of a sensor that was just turned on: history is not acted on."""
    start = newest_storage_id(instance, asset)
    return SensorResult(skip_reason=SkipReason(f"watching {asset} from record {start} on"), cursor=str(start))


def record_metadata(record) -> dict:
    return {k: v.value for k, v in record.asset_materialization.metadata.items()}


def _report_sensor(context: SensorEvaluationContext, asset: str, trigger: str, verdict) -> SensorResult | SkipReason:
    instance = context.instance
    if context.cursor is None:
        return start_watching(instance, asset)
    records = new_records(instance, asset, int(context.cursor))
    if not records:
        return SkipReason(f"no new {asset} since record {context.cursor}")
    last = last_retrain_day(instance)
    cooldown = settings().retrain_cooldown_days
    requests, held, incidents = [], [], []
    for record in records:
        day, metadata = record.asset_materialization.partition, record_metadata(record)
        reason = verdict(metadata)
        if reason is None or day is None:
            continue
        if metadata.get("feed_incident"):  # a broken feed, not a changed world: retraining would learn the bug
            incidents.append(f"{day} ({', '.join(metadata.get('feed_checks') or [])})")
            continue
        if in_cooldown(day, last, cooldown):
            held.append(f"{day} (retrain as of {last} is within the {cooldown}-day cooldown)")
            continue
        requests.append(retrain_request(RetrainTrigger(
            kind=trigger, reason=reason, asset=asset, partition=day, storage_id=str(record.storage_id),
            run_id=record.run_id, as_of=day)))
        last = day
    cursor = str(records[-1].storage_id)
    if requests:
        return SensorResult(run_requests=requests, cursor=cursor)
    what = f"{len(records)} new {asset} record(s): " + (
        "threshold crossed on " + "; ".join(held) if held else "no threshold crossed")
    if incidents:
        what += "; feed incident, not retraining: threshold crossed on flagged day(s) " + "; ".join(incidents)
    return SensorResult(skip_reason=SkipReason(what), cursor=cursor)


# --- retraining --------------------------------------------------------------------------------

@sensor(
    jobs=[retrain_job],
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    # on: it only reacts to new drift reports, at most one retrain per cooldown
    default_status=DefaultSensorStatus.RUNNING,
    description="Requests retrain_job when a day's drift_report finds dataset drift (share of drifted "
    "columns >= FLIGHTS_DRIFT_SHARE); not within FLIGHTS_RETRAIN_COOLDOWN_DAYS (default 14) days of the last "
    "retrain. Run key = the day; tags name the report.",
)
def drift_sensor(context: SensorEvaluationContext):
    return _report_sensor(context, "drift_report", "drift_sensor", drift_reason)


@sensor(
    jobs=[retrain_job],
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=DefaultSensorStatus.RUNNING,  # on: same reasons as drift_sensor
    description="Requests retrain_job when a day's performance_report finds the trailing ROC AUC "
    "FLIGHTS_ROC_AUC_DROP or more below the model's evaluation ROC AUC; same cooldown and run key "
    "rules as drift_sensor.",
)
def performance_sensor(context: SensorEvaluationContext):
    return _report_sensor(context, "performance_report", "performance_sensor", performance_reason)


# --- monitoring of new days --------------------------------------------------------------------

def champion_deployed(instance) -> bool:
    """Whether a model is deployed, as the newest champion_model materialization says (no MLflow
    import in the sensor process)."""
    event = instance.get_latest_materialization_event(AssetKey("champion_model"))
    if event is None or event.asset_materialization is None:
        return False
    champion = event.asset_materialization.metadata.get("champion")
    return champion is not None and champion.value != "none"


@sensor(
    jobs=[monitor_job],
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    # on: scoring and reports follow each newly built day, once a model is deployed
    default_status=DefaultSensorStatus.RUNNING,
    description="When a day's flight_features are (re)built and a model is deployed, scores the day "
    "and builds its drift and performance reports (monitor_job). Run key = day + record.",
)
def monitor_sensor(context: SensorEvaluationContext):
    instance = context.instance
    if context.cursor is None:
        return start_watching(instance, "flight_features")
    records = new_records(instance, "flight_features", int(context.cursor))
    if not records:
        return SkipReason("no newly built day")
    if not champion_deployed(instance):
        # keep the cursor: these days are monitored once a model is deployed
        return SkipReason(f"{len(records)} new day(s) wait for a deployed model (run retrain_job)")
    seen, reported, runs = records, 0, {}
    latest = {}  # one run per day, newest record
    for i, r in enumerate(records):
        if r.run_id not in runs:
            runs[r.run_id] = instance.get_run_by_id(r.run_id)
        run = runs[r.run_id]
        if run is not None and run.job_name == day_job.name:
            if not run.is_finished:  # it reports the day itself: wait here (the cursor stays before it)
                seen = records[:i]
                break
            if run.is_success:
                reported += 1
                continue  # reported in the same run; a failed one leaves the day to monitor_job
        latest[r.asset_materialization.partition] = r
    requests = [
        RunRequest(run_key=f"monitor:{day}:{r.storage_id}", partition_key=day,
                   tags=RetrainTrigger(kind="monitor_sensor", storage_id=str(r.storage_id)).tags())
        for day, r in sorted(latest.items())
    ]
    if not seen:
        return SkipReason(f"day_job run {records[0].run_id[:8]} builds and reports {records[0].asset_materialization.partition}")
    if requests:
        return SensorResult(run_requests=requests, cursor=str(seen[-1].storage_id))
    return SensorResult(skip_reason=SkipReason(f"{reported} new day(s) reported by the day_job run that built them"),
                        cursor=str(seen[-1].storage_id))


# --- landing folder ----------------------------------------------------------------------------

# what the folder holds and which days are settled: resources/source_files.py (landing_files, LandingLook)


def _landing_work(day: str, files: dict[str, str]) -> str:
    return f"landing:{day}:" + ",".join(f"{k}@{v}" for k, v in sorted(files.items()))


def _landing_request(day: str, files: dict[str, str], attempt) -> RunRequest:
    return RunRequest(run_key=attempt.run_key, partition_key=day, tags={
        **RetrainTrigger(kind="landing_sensor", extra={"files": ", ".join(sorted(files))}).tags(), **attempt.tags})


@sensor(
    jobs=[ingest_job],
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    # on: it does nothing unless FLIGHTS_SOURCE=landing, and then it is how new days come in
    default_status=DefaultSensorStatus.RUNNING,
    description="With FLIGHTS_SOURCE=landing: a new or changed flights_/weather_YYYY-MM-DD.csv|parquet "
    "in FLIGHTS_LANDING_DIR ingests that day (ingest_job), once settled: the same size and mtime at two "
    "ticks in a row. Drop files atomically (write, then rename).",
)
def landing_sensor(context: SensorEvaluationContext):
    s = settings()
    if s.source != "landing":
        return SkipReason("FLIGHTS_SOURCE is not 'landing': nothing to watch")
    folder = s.landing_dir
    found = landing_files(folder)
    if context.cursor is None:  # turned on: files already there are history (ingest them by a backfill)
        return SensorResult(skip_reason=SkipReason(f"watching {folder}: {len(found)} day(s) already there"),
                            cursor=LandingLook.first(found).cursor)
    # a new or changed file is taken at the next tick that sees it unchanged (weather alone waits)
    look = LandingLook.of(found, context.cursor, set(partition_days()))
    requests = []
    for day in look.taken:
        files = found[day]
        attempt = next_attempt(context.instance, _landing_work(day, files))
        if attempt.run_key:
            requests.append(_landing_request(day, files, attempt))
    asked = {r.run_key for r in requests}  # and the days whose ingestion failed, files unchanged (bounded)
    requests += [_landing_request(day, found[day], a) for day, a in again_after_failure(
        context.instance, "landing_sensor", lambda d: _landing_work(d, found.get(d, {}))) if a.run_key not in asked]
    cursor = look.cursor
    if requests:
        return SensorResult(run_requests=requests, cursor=cursor)
    note = f"; ignored days outside the partitions: {', '.join(look.ignored)}" if look.ignored else ""
    settling = f"; waiting for the files of {', '.join(look.settling)} to settle" if look.settling else ""
    return SensorResult(skip_reason=SkipReason(f"no new settled file in {folder}{settling}{note}"), cursor=cursor)


# --- the replay clock ----------------------------------------------------------------------------

def replay_today(instance) -> str | None:
    """The replay's 'today': the day after the newest day with features (not before
    FLIGHTS_REPLAY_START); None once FLIGHTS_REPLAY_END (or 2013) is over."""
    keys, start = [d for d in partition_days() if d <= settings().replay_end], settings().replay_start
    status = instance.get_status_by_partition(AssetKey("flight_features"), keys, daily_partitions) or {}
    built = [d for d, s in status.items() if s == AssetPartitionStatus.MATERIALIZED and d >= start]
    if not built:
        return start if start in keys else None
    later = [d for d in keys if d > max(built)]
    return later[0] if later else None


@sensor(
    jobs=[ingest_job, day_job, retrain_job],
    minimum_interval_seconds=settings().replay_seconds_per_day,
    # off: turning it on replays 2013 into the warehouse, a day every FLIGHTS_REPLAY_SECONDS_PER_DAY
    default_status=DefaultSensorStatus.STOPPED,
    description="Accelerated replay of 2013: each tick ingests the replay's 'today' (the day after the "
    "newest day with features, from FLIGHTS_REPLAY_START), once the previous day's runs are done; once a model "
    "is deployed, the same run scores and reports the day (day_job). "
    "With FLIGHTS_REPLAY_PERIODIC_RETRAIN=true it also requests the periodic retrain every "
    "FLIGHTS_RETRAIN_EVERY_DAYS replayed days.",
)
def replay_clock_sensor(context: SensorEvaluationContext):
    instance = context.instance
    busy = instance.get_runs(RunsFilter(statuses=IN_FLIGHT), limit=1)
    if busy:
        return SkipReason(f"waiting for run {busy[0].run_id[:8]} ({busy[0].job_name}) to finish")
    today = replay_today(instance)
    if today is None:
        return SkipReason(f"the replay has reached its end day ({settings().replay_end})")
    attempt = next_attempt(instance, f"replay-ingest:{today}")  # again after a failed run, bounded
    if attempt.run_key is None:
        return SkipReason(f"the replay stays on {today}: {attempt.gave_up}")
    job = day_job if champion_deployed(instance) else ingest_job
    requests = [RunRequest(run_key=attempt.run_key, job_name=job.name, partition_key=today,
                           tags={**RetrainTrigger(kind="replay_clock_sensor").tags(), "replay.today": today, **attempt.tags})]
    yesterday, s = previous_day(today), settings()
    if s.replay_periodic_retrain and yesterday and retrain_due(yesterday, last_retrain_day(instance), s.retrain_every_days):
        requests.append(retrain_request(RetrainTrigger(
            kind="periodic_retrain", reason=f"periodic retrain every {s.retrain_every_days} replayed days", as_of=yesterday),
            instance))
    return SensorResult(run_requests=[r for r in requests if r is not None])


defs = Definitions(sensors=[drift_sensor, performance_sensor, monitor_sensor, landing_sensor, replay_clock_sensor])
