"""The MLflow tracking store and model registry, as a small resource around `MlflowClient`.

Registry aliases, not stages: `champion` is the deployed version, `previous` the one before it.
A version is the typed model MLflow's scoring server runs (resources/served_model.py) with the
fitted Pipeline inside; batch steps load that Pipeline with the reviewed skops types only.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from resources.model_files import PIPELINE_ARTIFACT, load_pipeline
from resources.settings import data_dir, postgres_database

MODEL_NAME = "flight_delay_classifier"
EXPERIMENT = "flight-delay"
CHAMPION, PREVIOUS = "champion", "previous"


def default_tracking_uri() -> str:
    return (os.environ.get("MLFLOW_TRACKING_URI") or postgres_database("mlflow")
            or f"sqlite:///{data_dir() / 'mlflow.db'}")


def default_artifact_root() -> str:
    return os.environ.get("MLFLOW_ARTIFACT_ROOT") or str(data_dir() / "mlartifacts")


class RegistryUnavailable(RuntimeError):
    pass


class ModelRegistry(ConfigurableResource):
    """MLflow tracking + registry (env MLFLOW_TRACKING_URI; SQLite under data/ by default)."""

    tracking_uri: str = Field(default_factory=default_tracking_uri)
    artifact_root: str = Field(default_factory=default_artifact_root)
    model_name: str = MODEL_NAME
    experiment_name: str = EXPERIMENT

    def _setup(self):
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        import mlflow

        if self.tracking_uri.startswith("sqlite:///"):
            Path(self.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        mlflow.set_tracking_uri(self.tracking_uri)
        return mlflow

    @property
    def client(self):
        mlflow = self._setup()
        return mlflow.MlflowClient(tracking_uri=self.tracking_uri)

    def experiment_id(self) -> str:
        client = self.client
        try:
            exp = client.get_experiment_by_name(self.experiment_name)
        except Exception as exc:  # unreachable store, bad URI, ...
            raise RegistryUnavailable(f"MLflow tracking store {self.tracking_uri} unreachable: {exc}") from exc
        if exp is not None:
            return exp.experiment_id
        Path(self.artifact_root).mkdir(parents=True, exist_ok=True)
        return client.create_experiment(self.experiment_name, artifact_location=Path(self.artifact_root).as_uri())

    def version_by_alias(self, alias: str):
        """The model version holding `alias`, or None."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version_by_alias(self.model_name, alias)
        except MlflowException as exc:
            if "RESOURCE_DOES_NOT_EXIST" in str(exc.error_code) or "not found" in str(exc).lower():
                return None
            raise RegistryUnavailable(f"MLflow registry {self.tracking_uri}: {exc}") from exc

    def load(self, version: str):
        """The sklearn Pipeline of a registered version, read from the version's artifacts with
        the reviewed skops types only (the served model's code is not run)."""
        mlflow = self._setup()
        uri = f"models:/{self.model_name}/{version}"
        try:
            with tempfile.TemporaryDirectory() as tmp:
                local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp)
                return load_pipeline(Path(local) / "artifacts" / PIPELINE_ARTIFACT)
        except Exception as exc:
            raise RuntimeError(
                f"model {self.model_name} version {version}: artifacts missing or unreadable ({exc})"
            ) from exc

    def promote(self, version: str) -> str | None:
        """Move `champion` to `version`; the old champion keeps `previous`. Returns the old one."""
        client = self.client
        old = self.version_by_alias(CHAMPION)
        if old is not None and str(old.version) == str(version):  # already done (a retried step)
            previous = self.version_by_alias(PREVIOUS)
            return None if previous is None else str(previous.version)
        if old is not None:
            client.set_registered_model_alias(self.model_name, PREVIOUS, str(old.version))
        client.set_registered_model_alias(self.model_name, CHAMPION, str(version))  # the move
        return None if old is None else str(old.version)

    def rollback(self) -> tuple[str, str]:
        """`champion` back to `previous`; the rolled-back version becomes `previous`."""
        current, previous = self.version_by_alias(CHAMPION), self.version_by_alias(PREVIOUS)
        if current is None or previous is None:
            raise RuntimeError("rollback needs both a `champion` and a `previous` model version")
        client = self.client
        client.set_registered_model_alias(self.model_name, CHAMPION, str(previous.version))
        client.set_registered_model_alias(self.model_name, PREVIOUS, str(current.version))
        return str(current.version), str(previous.version)
