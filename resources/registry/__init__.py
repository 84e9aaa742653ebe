"""The MLflow model registry as every process of the pipeline reads and writes it, with no
Dagster: the scoring server, the operator commands and the steps (through the thin resource in
resources/dagster_resources.py) share `ModelRegistry`. One concern a module:

- `store`: where the tracking store is, the client that names it when it fails, the errors;
- `runs`: a retrain's run, the trials of its search, the candidate registered from it;
- `versions`: registered versions, the champion / previous / challenger aliases and their events;
- `artifacts`: files and JSON on runs, a version's Pipeline, links into the MLflow UI.
"""

from resources.registry.artifacts import ArtifactsAndLinks
from resources.registry.runs import TrainingRuns
from resources.registry.store import (
    CHALLENGER,
    CHAMPION,
    DATA_VALIDATION_EXPERIMENT,
    EVALUATION_ARTIFACT,
    EXPERIMENT,
    MODEL_CARD_FOLDER,
    MODEL_NAME,
    PREVIOUS,
    SERVED_MODEL_PACKAGE,
    DeploymentRefused,
    RegistryStore,
    RegistryUnavailable,
)
from resources.registry.versions import VersionsAndAliases


class ModelRegistry(VersionsAndAliases, TrainingRuns, ArtifactsAndLinks, RegistryStore):
    """MLflow tracking + registry (MLFLOW_TRACKING_URI; SQLite under data/ by default):
    `ModelRegistry()` follows the settings; `ModelRegistry(tracking_uri=..., artifact_root=...)`
    names a store."""


__all__ = ["CHALLENGER", "CHAMPION", "DATA_VALIDATION_EXPERIMENT", "EVALUATION_ARTIFACT", "EXPERIMENT", "MODEL_CARD_FOLDER",
           "MODEL_NAME", "PREVIOUS", "SERVED_MODEL_PACKAGE", "DeploymentRefused", "ModelRegistry", "RegistryStore",
           "RegistryUnavailable"]
