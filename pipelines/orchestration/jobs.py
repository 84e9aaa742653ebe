"""Jobs of the pipeline."""

from dagster import AssetSelection, Definitions, define_asset_job

from assets.asset_factory import daily_partitions

# The longest a run of each job may take before the daemon's run monitoring fails it (Dagster's
# `dagster/max_runtime` tag, seconds; dagster.yaml `run_monitoring`): how a run whose process died
# leaves the limits it holds. A backfill of the whole year is one ingest run; a retrain tunes.
MAX_RUNTIME_TAG = "dagster/max_runtime"
MAX_RUNTIME_SECONDS = {"ingest_job": 2 * 3600, "retrain_job": 4 * 3600, "score_job": 3600, "monitor_job": 3600,
                       "day_job": 3600, "deployment": 600}


def runtime_limit(job_name: str) -> dict[str, str]:
    return {MAX_RUNTIME_TAG: str(MAX_RUNTIME_SECONDS[job_name])}


DATA_GROUPS = ("ingestion", "validation", "features")

# ingest -> validate -> build features for one day, or for a range of days as a single run
ingest_job = define_asset_job(
    "ingest_job",
    selection=AssetSelection.groups(*DATA_GROUPS),
    partitions_def=daily_partitions,
    description="Ingest, validate (Great Expectations, quarantine) and build features for the "
    "selected days. A backfill of many days runs as one run.",
    tags={"stage": "data", **runtime_limit("ingest_job")},
)

# training_set -> candidate_model -> model_evaluation -> champion_model (unpartitioned)
retrain_job = define_asset_job(
    "retrain_job",
    selection=AssetSelection.groups("training", "evaluation", "deployment"),
    description="Train a candidate on a trailing window, evaluate it against the champion and a "
    "baseline, and move the `champion` alias if the gate passes.",
    tags={"stage": "retrain", **runtime_limit("retrain_job")},
)

score_job = define_asset_job(
    "score_job",
    selection=AssetSelection.assets("predictions"),
    partitions_def=daily_partitions,
    description="Score the selected days with the current champion.",
    tags={"stage": "scoring", **runtime_limit("score_job")},
)

# predictions -> drift_report + performance_report for one day (the monitor_sensor's job)
MONITORING = AssetSelection.assets("predictions", "drift_report", "performance_report")
monitor_job = define_asset_job(
    "monitor_job",
    selection=MONITORING,
    partitions_def=daily_partitions,
    description="Score the selected days with the deployed model and build their Evidently drift and "
    "performance reports.",
    tags={"stage": "monitoring", **runtime_limit("monitor_job")},
)


# ingest_job's assets and monitor_job's in one run: a new day once a model is deployed (the replay
# clock's job then). One run process instead of two: the libraries are imported once, and nothing
# waits for a sensor tick between the day's features and its reports.
day_job = define_asset_job(
    "day_job",
    selection=AssetSelection.groups(*DATA_GROUPS) | MONITORING,
    partitions_def=daily_partitions,
    description="One new day end to end: ingest, validate, build features, score with the deployed model and build "
    "the day's drift and performance reports (ingest_job and monitor_job in one run).",
    tags={"stage": "data", **runtime_limit("day_job")},
)


defs = Definitions(jobs=[ingest_job, retrain_job, score_job, monitor_job, day_job])
