"""Batch scoring logic (no Dagster): a day's flights scored by a model, its version on every row."""

from __future__ import annotations

import pandas as pd

from served_model.features import model_input

KEY_COLUMNS = ["partition_date", "row_number", "flight", "carrier", "origin", "dest", "sched_dep_ts"]


def score(features: pd.DataFrame, model, threshold: float, name: str, version: str) -> pd.DataFrame:
    p = model.predict_proba(model_input(features))[:, 1]
    out = features[KEY_COLUMNS].copy()
    out["probability_late"] = p
    out["predicted_late"] = (p >= threshold).astype(int)
    out["threshold"] = threshold
    out["model_name"] = name
    out["model_version"] = str(version)
    return out
