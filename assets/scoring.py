"""Batch scoring: each day's flights scored by the champion (`predictions`)."""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from assets.partitions import add_partition_metadata, daily_partitions, single_run_backfill
from assets.training import model_input
from resources.retries import STORE_RETRY_POLICY, DataFailure
from resources.registry import CHAMPION, ModelRegistry
from resources.schemas import flight_features, predictions as predictions_table
from resources.warehouse import Warehouse


def score(features, model, threshold: float, name: str, version: str):
    p = model.predict_proba(model_input(features))[:, 1]
    out = features[["partition_date", "row_number", "flight", "carrier", "origin", "dest", "sched_dep_ts"]].copy()
    out["probability_late"] = p
    out["predicted_late"] = (p >= threshold).astype(int)
    out["threshold"] = threshold
    out["model_name"] = name
    out["model_version"] = str(version)
    return out


@asset(
    retry_policy=STORE_RETRY_POLICY,
    deps=["flight_features", "champion_model"],
    partitions_def=daily_partitions,
    backfill_policy=single_run_backfill,
    group_name="scoring",
    kinds={"sklearn", "sql"},
    owners=["team:ml-platform"],
    tags={"stage": "scoring"},
    description="Each day's flights scored by the current champion (registry alias), written to "
    "`predictions` with the model version on every row.",
)
def predictions(context: AssetExecutionContext, warehouse: Warehouse, model_registry: ModelRegistry):
    champion = model_registry.version_by_alias(CHAMPION)
    if champion is None:
        raise DataFailure("no champion model yet: run retrain_job first")
    model = model_registry.load(champion.version)
    threshold = float(champion.tags.get("threshold", 0.5))
    partitions = context.partition_keys
    features = warehouse.read(flight_features, partitions)
    scored = score(features, model, threshold, model_registry.model_name, champion.version)
    with warehouse.replace_partitions() as tx:
        tx.replace(predictions_table, partitions, scored)
    per_day = scored.groupby("partition_date").agg(rows=("row_number", "size"), predicted_late=("predicted_late", "mean"))
    add_partition_metadata(
        context,
        {p: {"rows": int(per_day["rows"].get(p, 0)), "predicted_late_share": float(per_day["predicted_late"].get(p, 0.0)),
             "model_version": champion.version} for p in partitions},
    )
    return MaterializeResult(
        metadata={
            "rows": MetadataValue.int(len(scored)),
            "model": MetadataValue.text(f"{model_registry.model_name} v{champion.version}"),
            "threshold": MetadataValue.float(threshold),
        }
    )
