"""What a model records about the code and the data it came from (no Dagster): the git commit, the
lock file's digest, the served model's pinned requirements, and the MLflow dataset that points
at its training window in the warehouse."""

from __future__ import annotations

import hashlib
import json
import subprocess

from resources.records import TrainingWindow
from resources.settings import REPO_ROOT

# what the served model imports: the version pins exactly these (pip_requirements)
MODEL_REQUIREMENTS = ("scikit-learn", "treelite", "numpy", "pandas", "scipy", "skops", "pydantic", "mlflow")

def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") if out.returncode == 0 else "unknown"
    except Exception:
        return "unknown"


def lock_digest() -> str:
    """sha256 of requirements.lock: the exact versions of every dependency the model came from."""
    path = REPO_ROOT / "requirements.lock"
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "unknown"


def pip_requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in MODEL_REQUIREMENTS]


def training_dataset(window: TrainingWindow, source: str):
    """An MLflow dataset that points at the window's rows in the warehouse (called with the
    signature's input schema)."""
    from mlflow.data.http_dataset_source import HTTPDatasetSource
    from mlflow.data.meta_dataset import MetaDataset

    days = window.days
    digest = hashlib.sha256(json.dumps(window.data_versions, sort_keys=True).encode()).hexdigest()[:8]

    def dataset(schema):
        return MetaDataset(source=HTTPDatasetSource(f"{source}?days={days[0]}..{days[-1]}"),
                           name=f"flight_features {days[0]}..{days[-1]}", digest=digest, schema=schema)

    return dataset
