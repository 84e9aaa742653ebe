"""Jobs of the pipeline."""

from dagster import AssetSelection, Definitions, define_asset_job

from assets.asset_factory import daily_partitions

DATA_GROUPS = ("ingestion", "validation", "features")

# ingest -> validate -> build features for one day, or for a range of days as a single run
ingest_job = define_asset_job(
    "ingest_job",
    selection=AssetSelection.groups(*DATA_GROUPS),
    partitions_def=daily_partitions,
    description="Ingest, validate (Great Expectations, quarantine) and build features for the "
    "selected days. A backfill of many days runs as one run.",
    tags={"stage": "data"},
)

# training_set -> candidate_model -> model_evaluation -> champion_model (unpartitioned)
retrain_job = define_asset_job(
    "retrain_job",
    selection=AssetSelection.groups("training", "evaluation", "deployment"),
    description="Train a candidate on a trailing window, evaluate it against the champion and a "
    "baseline, and move the `champion` alias if the gate passes.",
    tags={"stage": "retrain"},
)

score_job = define_asset_job(
    "score_job",
    selection=AssetSelection.assets("predictions"),
    partitions_def=daily_partitions,
    description="Score the selected days with the current champion.",
    tags={"stage": "scoring"},
)

# predictions -> drift_report + performance_report for one day (the monitor_sensor's job)
monitor_job = define_asset_job(
    "monitor_job",
    selection=AssetSelection.assets("predictions", "drift_report", "performance_report"),
    partitions_def=daily_partitions,
    description="Score the selected days with the deployed model and build their Evidently drift and "
    "performance reports.",
    tags={"stage": "monitoring"},
)


defs = Definitions(jobs=[ingest_job, retrain_job, score_job, monitor_job])
