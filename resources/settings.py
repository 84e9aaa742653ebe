"""Settings of the pipeline in one place: paths, the partition calendar and thresholds.

Every value can be overridden by an environment variable (documented in the README);
the defaults work on a fresh clone.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _path_from_env(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser().resolve() if value else default


DATA_DIR = _path_from_env("FLIGHTS_DATA_DIR", REPO_ROOT / "data")

# The embedded replay: one partition per day of 2013.
PARTITION_START = "2013-01-01"
PARTITION_END_EXCLUSIVE = "2014-01-01"

# Default window of the README's main command.
DEFAULT_DEMO_START = "2013-01-01"
DEFAULT_DEMO_END = "2013-01-14"

# Validation thresholds (overridable per run in the Launchpad through asset config).
MAX_QUARANTINE_SHARE = float(os.environ.get("FLIGHTS_MAX_QUARANTINE_SHARE", "0.10"))
# Share of flights of a day that must have a weather observation (WARN check only).
MIN_WEATHER_COVERAGE = float(os.environ.get("FLIGHTS_MIN_WEATHER_COVERAGE", "0.90"))

# Label: a flight is late when it arrives this many minutes (or more) after schedule.
LATE_THRESHOLD_MINUTES = 15


def default_warehouse_url() -> str:
    return os.environ.get("WAREHOUSE_URL") or f"sqlite:///{DATA_DIR / 'warehouse.db'}"


def default_landing_dir() -> str:
    return os.environ.get("FLIGHTS_LANDING_DIR") or str(DATA_DIR / "landing")


def gx_project_dir() -> Path:
    """Great Expectations file context (validation results and Data Docs), git-ignored."""
    return DATA_DIR / "gx"
