"""What performance_report says about deployment decisions (the asset's helpers): a shadow
challenger against the champion on batch scores (`shadow_*`), a canary challenger against the
champion on the flights each answered live (`canary_*`), and a new champion against the one it
replaced during its rollback watch (`watch_*`). The sensors that act on them:
pipelines/orchestration/deployment.py. And what both reports say of a day flagged as a broken feed
(`feed_incident`), which the retrain sensors and the alerts read."""

import pandas as pd
from dagster import MetadataValue

from assets.common import partition_days
from assets.monitoring.logic import KEY, labelled_rows, rounded, shadow_comparison
from assets.monitoring.rollback import rollback_watch
from assets.monitoring.served import canary_comparison
from assets.training.logic import LABEL
from resources.registry import PREVIOUS, ModelRegistry
from resources.schemas import flight_features, predictions, shadow_predictions
from resources.settings import settings
from resources.warehouse import Warehouse


def number(value: float, digits: int = 4):
    """A float for the metadata, or a note when it is undefined (e.g. ROC AUC of a one-class day)."""
    shown = rounded(value, digits)
    return MetadataValue.text("undefined") if shown is None else MetadataValue.float(shown)


def scored_days(warehouse: Warehouse, days: list[str]) -> pd.DataFrame:
    """Features, labels and the stored prediction of each flight of `days`."""
    feats = warehouse.read(flight_features, days)
    preds = warehouse.read(predictions, days, columns=[*KEY, "probability_late", "predicted_late", "threshold", "model_version"])
    return feats.merge(preds, on=KEY, how="inner", validate="one_to_one")


def shadow_of(warehouse: Warehouse, model_registry: ModelRegistry, last_day: str) -> tuple | None:
    """The shadow challenger, its scores and the champion's labelled rows of the days since it
    became the challenger, up to `last_day` (read once for all the days of a run); None without one."""
    challenger = model_registry.challenger()
    if challenger is None or challenger.challenger_mode != "shadow" or not challenger.challenger_since:
        return None
    shadow = warehouse.read(shadow_predictions, [d for d in partition_days() if challenger.challenger_since < d <= last_day])
    return challenger, shadow, labelled_rows(scored_days(warehouse, sorted(set(shadow["partition_date"]))), LABEL)


def shadow_metadata(challenger, shadow: pd.DataFrame, labelled: pd.DataFrame, day: str) -> dict:
    """The shadow challenger against the champion on the labelled days since it became the
    challenger, up to `day`, pooled."""
    from assets.evaluation.logic import GatePolicy

    compared = shadow_comparison(labelled[labelled["partition_date"] <= day], shadow[shadow["partition_date"] <= day],
                                 challenger.version, settings().shadow_days, GatePolicy().min_margin, LABEL)
    return {
        "shadow_challenger": MetadataValue.text(challenger.version),
        "shadow_days": MetadataValue.int(compared.days),
        "shadow_champion_roc_auc": number(compared.champion_roc_auc),
        "shadow_challenger_roc_auc": number(compared.challenger_roc_auc),
        "shadow_verdict": MetadataValue.text(compared.verdict),
        "shadow_reason": MetadataValue.text(compared.reason),
    }


def canary_of(warehouse: Warehouse, model_registry: ModelRegistry, last_day: str) -> tuple | None:
    """The canary challenger, the champion it runs beside, the answers by flight for the flights
    of the days since it began up to `last_day`, and those days' labelled flights; None without one."""
    challenger = model_registry.challenger()
    if challenger is None or challenger.challenger_mode != "canary" or not challenger.challenger_since:
        return None
    champion = model_registry.champion()
    days = [d for d in partition_days() if challenger.challenger_since < d <= last_day]
    if champion is None or not days:
        return None
    return challenger, champion, warehouse.served_by_flight(days), labelled_rows(warehouse.read(flight_features, days), LABEL)


def canary_metadata(challenger, champion, served: pd.DataFrame, outcomes: pd.DataFrame, day: str) -> dict:
    """The canary against the champion on the flights each answered, over the labelled days
    since the challenger began, up to `day`."""
    from assets.evaluation.logic import GatePolicy

    outcomes = outcomes[outcomes["partition_date"] <= day]
    compared = canary_comparison(served[served["scheduled_departure"].str[:10] <= day], outcomes, champion.version,
                                 challenger.version, int(outcomes["partition_date"].nunique()), settings().canary_days,
                                 GatePolicy().min_margin, LABEL)
    return {
        "canary_challenger": MetadataValue.text(challenger.version),
        "canary_days": MetadataValue.int(compared.days),
        "canary_answers": MetadataValue.int(compared.canary_answers),
        "canary_champion_answers": MetadataValue.int(compared.champion_answers),
        "canary_roc_auc": number(compared.canary_roc_auc),
        "canary_champion_roc_auc": number(compared.champion_roc_auc),
        "canary_verdict": MetadataValue.text(compared.verdict),
        "canary_reason": MetadataValue.text(compared.reason),
    }


def watch_of(warehouse: Warehouse, model_registry: ModelRegistry) -> tuple | None:
    """The champion in its rollback watch (it came by the gate or an approval), the version it
    replaced, that version's scores of the champion's first FLIGHTS_ROLLBACK_WATCH_DAYS scored
    days and the champion's labelled rows of them; None outside a watch."""
    needed, champion = settings().rollback_watch_days, model_registry.champion()
    if needed == 0 or champion is None or champion.became_champion_by not in ("promoted", "approved"):
        return None
    previous = model_registry.by_alias(PREVIOUS)
    if previous is None or previous.version == champion.version:
        return None
    shadow = warehouse.read(shadow_predictions, warehouse.days_scored_by(champion.version, first=needed))
    shadow = shadow[shadow["model_version"].astype(str) == previous.version]
    if shadow.empty:
        return None
    return champion, previous, shadow, labelled_rows(scored_days(warehouse, sorted(set(shadow["partition_date"]))), LABEL)


def watch_metadata(champion, previous, shadow: pd.DataFrame, labelled: pd.DataFrame, day: str) -> tuple[bool, dict]:
    """The champion against the version it replaced on the watched days up to `day`, pooled:
    the check's verdict and the day's metadata."""
    from assets.evaluation.logic import GatePolicy

    labelled = labelled[(labelled["partition_date"] <= day) & (labelled["model_version"].astype(str) == champion.version)]
    w = rollback_watch(labelled, shadow[shadow["partition_date"] <= day], champion.version, previous.version,
                       settings().rollback_watch_days, GatePolicy().min_margin, LABEL)
    return w.verdict != "rollback", {
        "watch_champion": MetadataValue.text(w.champion), "watch_previous": MetadataValue.text(w.previous),
        "watch_days": MetadataValue.int(w.days), "watch_flights": MetadataValue.int(w.flights),
        "watch_champion_roc_auc": number(w.champion_roc_auc), "watch_previous_roc_auc": number(w.previous_roc_auc),
        "watch_difference": number(w.difference), "watch_margin": number(w.margin),
        "watch_verdict": MetadataValue.text(w.verdict), "watch_reason": MetadataValue.text(w.reason),
    }


def feed_incidents(warehouse: Warehouse, days: list[str]) -> dict[str, dict]:
    """day -> the `feed_incident` metadata of a day with open broken-feed flags (resources/day_flags.py):
    what the retrain sensors and the alerts read to say "feed incident, not retraining"."""
    out: dict[str, list] = {}
    for f in warehouse.open_flags(days):
        out.setdefault(f.day, []).append(f)
    return {day: {"feed_incident": MetadataValue.text("\n".join(f.said for f in flags)),
                  "feed_checks": MetadataValue.json(sorted({f.check for f in flags}))} for day, flags in out.items()}
