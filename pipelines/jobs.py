"""Jobs of the pipeline."""

from dagster import AssetSelection, define_asset_job

from assets.partitions import daily_partitions

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
