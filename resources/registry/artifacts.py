"""What the registry keeps as files, and where a person sees it: links into the MLflow UI
(FLIGHTS_MLFLOW_UI_URL) for the Dagster metadata, the validations' Data Docs pages, JSON
records and files on a run, and a version's fitted Pipeline, read with the reviewed skops types
only (the served model's code is not run)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from resources.registry.store import DATA_VALIDATION_EXPERIMENT, RegistryStore, RegistryUnavailable, unreachable
from resources.settings import settings


class ArtifactsAndLinks(RegistryStore):
    """Links into the MLflow UI, Data Docs pages, JSON and files on runs, a version's Pipeline."""

    @staticmethod
    def _ui(fragment: str) -> str:
        return f"{settings().mlflow_ui_url}/#/{fragment}"

    def run_url(self, run_id: str, experiment_id: str | None = None) -> str:
        return self._ui(f"experiments/{experiment_id or self.experiment_id()}/runs/{run_id}")

    def version_url(self, version: str) -> str:
        return self._ui(f"models/{self.model_name}/versions/{version}")

    def artifact_url(self, run_id: str, path: str, experiment_id: str | None = None) -> str:
        """The artifact's page in the MLflow UI (served by the tracking server from its store)."""
        return self._ui(f"experiments/{experiment_id or self.experiment_id()}/runs/{run_id}/artifacts/{path}")

    def store_data_docs(self, asset: str, days: list[str], dagster_run_id: str, page_html: str) -> str:
        """Keep a validation's Data Docs page in the artifact store, in a run of experiment
        `data-validation` tagged with the asset, the days and the Dagster run; the page's URL."""
        client = self.client
        experiment = self.experiment_id(DATA_VALIDATION_EXPERIMENT)
        span = days[0] if len(days) == 1 else f"{days[0]}..{days[-1]}"
        run = client.create_run(experiment, run_name=f"{asset} {span}", tags={
            "dagster.run_id": dagster_run_id, "dagster.asset": asset, "partition.first": days[0],
            "partition.last": days[-1], "partition.count": str(len(days))})
        path = f"data_docs/{asset}.html"
        client.log_text(run.info.run_id, page_html, path)
        client.set_terminated(run.info.run_id)
        return self.artifact_url(run.info.run_id, path, experiment)

    def load(self, version: str):
        """The sklearn Pipeline of a registered version, read from the version's artifacts with
        the reviewed skops types only (the served model's code is not run)."""
        from served_model.files import PIPELINE_ARTIFACT, load_pipeline

        mlflow = self.mlflow_module()
        uri = f"models:/{self.model_name}/{version}"
        try:
            with tempfile.TemporaryDirectory() as tmp:
                local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp)
                return load_pipeline(Path(local) / "artifacts" / PIPELINE_ARTIFACT)
        except Exception as exc:
            raise RuntimeError(
                f"model {self.model_name} version {version}: artifacts missing or unreadable ({exc})"
            ) from exc

    def log_json(self, run_id: str, artifact_file: str, payload: dict) -> None:
        self.client.log_text(run_id, json.dumps(payload, indent=1), artifact_file)

    def read_json(self, run_id: str, artifact_file: str) -> dict:
        mlflow = self.mlflow_module()
        try:
            return json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/{artifact_file}"))
        except Exception as exc:
            self.raise_refused(exc)
            if unreachable(exc):
                raise RegistryUnavailable(f"MLflow tracking store {self.display_tracking_uri} unreachable (reading "
                                          f"{artifact_file}): {str(exc)[:300]}") from exc
            raise RuntimeError(f"MLflow run {run_id}: artifact {artifact_file} missing or unreadable ({exc})") from exc

    def log_files(self, run_id: str, paths: list[Path], folder: str) -> None:
        client = self.client
        for path in paths:
            client.log_artifact(run_id, str(path), artifact_path=folder)

    def pinned_requirements(self, version: str) -> list[str]:
        mlflow = self.mlflow_module()
        path = mlflow.pyfunc.get_model_dependencies(f"models:/{self.model_name}/{version}")
        return [line.strip() for line in open(path) if line.strip() and not line.startswith("#")]
