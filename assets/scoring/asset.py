"""Batch scoring: each day's flights scored by the champion (`predictions`)."""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, ResourceParam

from assets.asset_factory import add_partition_metadata, lifecycle_asset
from assets.scoring.logic import score
from resources.errors import DataProblem
from resources.registry import ModelRegistry
from resources.schemas import flight_features, shadow_predictions
from resources.schemas import predictions as predictions_table
from resources.warehouse import Warehouse


@lifecycle_asset(
    "scoring",
    daily=True,
    writes=predictions_table,
    deps=["flight_features", "champion_model"],
    kinds={"sklearn", "sql"},
    description="Each day's flights scored by the current champion (registry alias), written to `predictions` "
    "with the model version on every row; a shadow challenger (promotion mode shadow) scores them too, beside it "
    "(`shadow_predictions`).",
)
def predictions(context: AssetExecutionContext, warehouse: ResourceParam[Warehouse], model_registry: ResourceParam[ModelRegistry]):
    champion = model_registry.champion()
    if champion is None:
        raise DataProblem("no champion model yet: run retrain_job first")
    model = model_registry.load(champion.version)
    partitions = context.partition_keys
    features = warehouse.read(flight_features, partitions)
    scored = score(features, model, champion.threshold, champion.name, champion.version)
    challenger = model_registry.challenger()
    shadow = None
    if challenger is not None and challenger.challenger_mode == "shadow":
        shadow = score(features, model_registry.load(challenger.version), challenger.threshold, challenger.name,
                       challenger.version)
    with warehouse.replace_partitions() as tx:
        tx.replace(predictions_table, partitions, scored)
        if shadow is not None:
            tx.replace(shadow_predictions, partitions, shadow[["partition_date", "row_number", "probability_late",
                                                               "model_version"]])
    per_day = scored.groupby("partition_date").agg(rows=("row_number", "size"), predicted_late=("predicted_late", "mean"))
    add_partition_metadata(context, {
        p: {"rows": int(per_day["rows"].get(p, 0)), "dagster/row_count": int(per_day["rows"].get(p, 0)),  # written to predictions
            "predicted_late_share": float(per_day["predicted_late"].get(p, 0.0)),
            "model_version": champion.version}
        for p in partitions
    })
    return MaterializeResult(metadata={
        "rows": MetadataValue.int(len(scored)),
        "model": MetadataValue.text(champion.label),
        "threshold": MetadataValue.float(champion.threshold),
        "shadow_challenger": MetadataValue.text(challenger.label if shadow is not None else "none"),
    })
