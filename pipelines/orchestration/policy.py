"""When to retrain: the rules the sensors and schedules apply, as plain functions.

The closed-loop replay (`bench/closed_loop_replay.py`) applies the same functions, so what it
measures is what the sensors do.
"""

from __future__ import annotations

from datetime import date


def days_between(earlier: str, later: str) -> int:
    return (date.fromisoformat(later) - date.fromisoformat(earlier)).days


def in_cooldown(event_day: str, last_retrain_day: str | None, cooldown_days: int) -> bool:
    """True when a retrain as of `last_retrain_day` is too recent (or newer) for `event_day`."""
    return last_retrain_day is not None and days_between(last_retrain_day, event_day) < cooldown_days


def retrain_due(today: str, last_retrain_day: str | None, every_days: int) -> bool:
    """The periodic retrain: due when the last one is `every_days` or more days old."""
    return last_retrain_day is None or days_between(last_retrain_day, today) >= every_days


def drift_reason(metadata: dict) -> str | None:
    """Why a drift report calls for a retrain, from its recorded verdict, or None."""
    if not metadata.get("dataset_drift"):
        return None
    return (f"dataset drift: {metadata.get('drifted_columns')} of {metadata.get('monitored_columns')} monitored "
            f"columns drifted (share {metadata.get('drift_share')} >= {metadata.get('drift_share_threshold')})")


def performance_reason(metadata: dict) -> str | None:
    """Why a performance report calls for a retrain, from its recorded verdict, or None."""
    if not metadata.get("performance_degraded"):
        return None
    return (f"ROC AUC over the trailing days {metadata.get('trailing_roc_auc')} is "
            f"{metadata.get('roc_auc_drop')} below the model's evaluation ROC AUC "
            f"{metadata.get('evaluation_roc_auc')} (threshold {metadata.get('roc_auc_drop_threshold')})")
