"""The versions of the lifecycle's days (no Dagster): which registered model versions use each
version, a day's history as rows, and which superseded versions the retention may delete.

A model reads `flight_features` versions (their ids are on the version, tag `data.version_ids`);
it uses, through what each was built from (`day_versions.inputs`), the validated and raw versions
of those days too. A version registered before the ids were recorded names each day's content
hash only: every `flight_features` version of that day with that hash counts as used.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

import pandas as pd

from resources.records import ModelRecord, TrainingWindow

FEATURES = "flight_features"
# the assets that keep versions, upstream first (the order of a day's history)
ASSET_ORDER = ("raw_flights", "raw_weather", "validated_flights", "validated_weather", FEATURES)


def model_usage(records: Iterable[ModelRecord], catalog: pd.DataFrame,
                retrains: Mapping[str, TrainingWindow] | None = None) -> dict[str, list[str]]:
    """version id -> the labels of the registered model versions that use it (and of the
    `retrains`, run id -> window, recorded but not registered yet: listed after the versions)."""
    features = catalog[catalog["asset"] == FEATURES]
    by_hash: dict[tuple[str, str], list[str]] = defaultdict(list)
    for vid, day, digest in zip(features["version_id"], features["partition_date"], features["content_hash"], strict=True):
        by_hash[(day, digest)].append(vid)
    used: dict[str, set[str]] = defaultdict(set)
    numbers: dict[str, int] = {}
    windows = [(r.label, int(r.version), r.window) for r in records]
    windows += [(f"retrain run {run_id[:12]} (not registered)", 10**9, w) for run_id, w in (retrains or {}).items()]
    for label, number, window in windows:
        numbers[label] = number
        for day in window.days:
            if day in window.version_ids:
                used[window.version_ids[day]].add(label)
            elif day in window.data_versions:
                for vid in by_hash.get((day, window.data_versions[day]), []):
                    used[vid].add(label)
    inputs = {vid: json.loads(raw or "[]") for vid, raw in zip(catalog["version_id"], catalog["inputs"], strict=True)}
    pending = list(used)
    while pending:  # what each used version was built from is used too
        vid = pending.pop()
        for parent in inputs.get(vid, []):
            if not used[vid] <= used[parent]:
                used[parent] |= used[vid]
                pending.append(parent)
    return {vid: sorted(labels, key=lambda label: numbers.get(label, 0)) for vid, labels in used.items() if labels}


def status(row) -> str:
    if isinstance(row.deleted_at, str):
        return f"deleted {_when(row.deleted_at)}"
    if isinstance(row.superseded_at, str):
        return f"superseded {_when(row.superseded_at)}"
    return "current"


def _when(iso: str) -> str:
    return iso[:19].replace("T", " ") + " UTC"


def _count(value) -> int | str:
    return "" if value is None or pd.isna(value) else int(value)


def _text(value) -> str:
    return value if isinstance(value, str) else ""


def history_rows(catalog: pd.DataFrame, usage: dict[str, list[str]], asset: str | None = None) -> list[dict]:
    """One row per version in `catalog` (of `asset`, or of every asset), upstream assets first,
    oldest first: what a person auditing the day reads."""
    frame = catalog if asset is None else catalog[catalog["asset"] == asset]
    order = {a: i for i, a in enumerate(ASSET_ORDER)}
    frame = frame.assign(_order=frame["asset"].map(order)).sort_values(["partition_date", "_order", "created_at"], kind="stable")
    return [{
        "day": r.partition_date, "asset": r.asset, "version": r.version_id, "created": _when(r.created_at),
        "status": status(r), "source_file": _text(r.source_file), "rows_in": _count(r.rows_in),
        "rows_valid": _count(r.rows_valid), "rows_quarantined": _count(r.rows_quarantined),
        "content_hash": r.content_hash, "built_from": ", ".join(json.loads(r.inputs or "[]")),
        "used_by": ", ".join(usage.get(r.version_id, [])),
    } for r in frame.itertuples()]


HISTORY_COLUMNS = ["version", "created", "status", "rows_in", "rows_valid", "rows_quarantined", "content_hash",
                   "built_from", "used_by", "source_file"]


def retention_candidates(catalog: pd.DataFrame, usage: dict[str, list[str]], keep_days: float,
                         now: datetime) -> pd.DataFrame:
    """Superseded versions (rows not yet deleted) that stopped being current more than
    `keep_days` ago and that no registered model version uses. A current version is never one."""
    cutoff = (now - timedelta(days=keep_days)).isoformat(timespec="microseconds")
    superseded = catalog["superseded_at"].notna() & catalog["deleted_at"].isna()
    old = catalog["superseded_at"].fillna("9999") < cutoff
    unused = ~catalog["version_id"].isin(list(usage))
    return catalog[superseded & old & unused]
