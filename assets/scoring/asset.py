"""Batch scoring: each day's flights scored by the champion (`predictions`); beside it
(`shadow_predictions`), a shadow challenger's scores, and the previous champion's during the
champion's rollback watch (assets/monitoring/rollback.py)."""

import pandas as pd
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, ResourceParam

from assets.asset_factory import add_partition_metadata, lifecycle_asset
from assets.scoring.logic import score
from resources.errors import DataProblem
from resources.records import ModelRecord
from resources.registry import PREVIOUS, ModelRegistry
from resources.schemas import flight_features, shadow_predictions
from resources.schemas import predictions as predictions_table
from resources.settings import settings
from resources.warehouse import Warehouse


@lifecycle_asset(
    "scoring",
    daily=True,
    writes=predictions_table,
    deps=["flight_features", "champion_model"],
    kinds={"sklearn", "sql"},
    description="Each day's flights scored by the current champion (registry alias), written to `predictions` "
    "with the model version on every row; a shadow challenger (promotion mode shadow) scores them too, beside it "
    "(`shadow_predictions`), and so does the previous champion during the first FLIGHTS_ROLLBACK_WATCH_DAYS days of a "
    "champion promoted by the gate or approved (the rollback watch).",
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
    beside = [r for r in (challenger if challenger is not None and challenger.challenger_mode == "shadow" else None,
                          watched_previous(warehouse, model_registry, champion, partitions)) if r is not None]
    shadow = [score(features, model_registry.load(r.version), r.threshold, r.name, r.version)[SHADOW_COLUMNS]
              for r in beside]
    with warehouse.replace_partitions() as tx:
        tx.replace(predictions_table, partitions, scored)
        if shadow:
            tx.replace(shadow_predictions, partitions, pd.concat(shadow, ignore_index=True))
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
        "shadow_challenger": MetadataValue.text(challenger.label if challenger in beside else "none"),
        "rollback_watch": MetadataValue.text(next((f"{r.label} scored beside the champion" for r in beside
                                                   if r is not challenger), "none")),
    })


SHADOW_COLUMNS = ["partition_date", "row_number", "probability_late", "model_version"]


def watched_previous(warehouse: Warehouse, model_registry: ModelRegistry, champion: ModelRecord,
                     partitions: list[str]) -> ModelRecord | None:
    """The previous champion while `champion` is in its rollback watch: it became champion by the
    gate or an approval (not by a rollback), and has scored fewer than FLIGHTS_ROLLBACK_WATCH_DAYS
    other days; None otherwise."""
    watch = settings().rollback_watch_days
    if watch == 0 or champion.became_champion_by not in ("promoted", "approved"):
        return None
    previous = model_registry.by_alias(PREVIOUS)
    if previous is None or previous.version == champion.version:
        return None
    earlier = [d for d in warehouse.days_scored_by(champion.version, first=watch + len(partitions)) if d not in partitions]
    return previous if len(earlier) < watch else None
