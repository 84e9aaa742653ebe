"""A retrain's MLflow runs: the run that records its window, trigger and build, the trials of
its search nested under it, and the candidate logged into it and registered as a new version
(the served model, served_model/, with the fitted Pipeline inside)."""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path

from resources.records import BuildInfo, ModelRecord, RetrainTrigger, Tag, TrainingWindow
from resources.registry.store import SERVED_MODEL_PACKAGE, RegistryStore, naming_the_store


class TrainingRuns(RegistryStore):
    """A retrain's run, its trials, its candidate."""

    def start_training_run(self, window: TrainingWindow, trigger: RetrainTrigger, build: BuildInfo,
                           run_name: str) -> str:
        """A new MLflow run that records a retrain's window, trigger and build; the candidate is
        logged into it later (`register_candidate`), from any host."""
        client = self.client
        run = client.create_run(self.experiment_id(), tags={**build.tags(), **window.tags(), **trigger.tags()},
                                run_name=run_name)
        client.set_terminated(run.info.run_id, "FINISHED")
        return run.info.run_id

    def registry_id(self, create: bool = False) -> str | None:
        """The registry's identity: a random id kept as a tag of the project's experiment, made
        once (`create`, by the first retrain), so that the warehouse can record which registry
        its versions were recorded against. None: no project experiment, or made by older code."""
        client = self.client
        if create:
            experiment = client.get_experiment(self.experiment_id())
        elif (experiment := client.get_experiment_by_name(self.experiment_name)) is None:
            return None
        if Tag.REGISTRY_ID in experiment.tags or not create:
            return experiment.tags.get(Tag.REGISTRY_ID)
        client.set_experiment_tag(experiment.experiment_id, Tag.REGISTRY_ID, uuid.uuid4().hex)
        return client.get_experiment(experiment.experiment_id).tags[Tag.REGISTRY_ID]  # two at once: the last one set

    def recorded_windows(self) -> dict[str, tuple[TrainingWindow, bool]]:
        """Every retrain's run of the project's experiment that records a window: run id ->
        (the window, whether a version was registered from it). The ones not registered are
        retrains under way (or stopped before their candidate): their versions are still needed."""
        client = self.client
        experiment = client.get_experiment_by_name(self.experiment_name)
        if experiment is None:
            return {}
        registered = {mv.run_id for mv in client.search_model_versions(f"name='{self.model_name}'")}
        found, token = {}, None
        while True:
            page = client.search_runs([experiment.experiment_id], f"tags.`{Tag.PARTITIONS}` LIKE '%'",
                                      max_results=1000, page_token=token)
            for run in page:
                tags = run.data.tags
                found[run.info.run_id] = (TrainingWindow.from_tags(tags),
                                          run.info.run_id in registered or Tag.REGISTERED_VERSION in tags)
            token = page.token
            if not token:
                return found

    def training_window(self, run_id: str) -> TrainingWindow:
        window = TrainingWindow.from_tags(self.client.get_run(run_id).data.tags)
        if not window.days:
            raise LookupError(f"MLflow run {run_id} records no training window (tag {Tag.PARTITIONS})")
        return window

    def register_candidate(self, model, *, run_id: str, params: dict, metrics: dict, threshold: float, sample,
                           dataset, pip_requirements: list[str], version_tags: dict[str, str] | None = None,
                           ) -> tuple[ModelRecord, float]:
        """Log the fitted Pipeline into the retrain's MLflow run and register it as a new version
        (the served model with the Pipeline inside); the run's tags (window, trigger, build) are
        copied onto the version. Returns the version and the seconds logging and registering took.
        Idempotent per MLflow run: a version already registered from `run_id` is returned as it is."""
        import mlflow.pyfunc  # noqa: F401  (modules load before the logging is timed)
        import mlflow.sklearn  # noqa: F401
        import skops.io  # noqa: F401
        from mlflow.models import infer_signature

        from served_model.files import PIPELINE_ARTIFACT, save_pipeline

        mlflow = self.mlflow_module()
        # a step run again for the same MLflow run (a retry, or a task a dead worker left to
        # another one) gets the version already registered from it, not a second one
        done = self.client.search_model_versions(f"name='{self.model_name}' and run_id='{run_id}'")
        if done:
            version = str(max(int(v.version) for v in done))
            self.client.set_tag(run_id, Tag.REGISTERED_VERSION, version)
            return self.record(version), 0.0

        signature = infer_signature(sample, model.predict_proba(sample))
        started = time.perf_counter()
        with naming_the_store(self, "registering the candidate"), tempfile.TemporaryDirectory() as tmp, \
                mlflow.start_run(run_id=run_id) as run:
            mlflow.log_params(params)
            # the training data stays in the warehouse: a reference to it (source, window, a digest
            # of the days' data versions, schema) rather than a profile of the frame (~2 s)
            mlflow.log_input(dataset(signature.inputs), context="training")
            pipeline_dir = Path(tmp) / PIPELINE_ARTIFACT
            save_pipeline(model, pipeline_dir, signature, pip_requirements)
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(SERVED_MODEL_PACKAGE / "entry.py"),
                artifacts={PIPELINE_ARTIFACT: str(pipeline_dir)},
                code_paths=[str(SERVED_MODEL_PACKAGE)],
                pip_requirements=pip_requirements,
            )
            # linked to the logged model: its page (and the version's) shows them, not only the run's
            mlflow.log_metrics(metrics, model_id=info.model_id)
            tags = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}
        # the version and all its tags in one registry call (a tag per call costs a round trip
        # each through a tracking server)
        with naming_the_store(self, "registering the candidate"):
            registered = mlflow.register_model(info.model_uri, self.model_name,
                                               tags={Tag.THRESHOLD: f"{threshold:.6f}", **tags, **(version_tags or {})})
            # the run's window is the version's now (the retention keeps it for the version, not the run)
            self.client.set_tag(run_id, Tag.REGISTERED_VERSION, str(registered.version))
        return self.record(str(registered.version)), time.perf_counter() - started

    def log_trials(self, parent_run_id: str, trials: list[dict], metric_keys: tuple[str, ...]) -> list[str]:
        """Each trial of a retrain's search as a run nested under the retrain's run (its params,
        and the figures of `metric_keys` as metrics). Idempotent: a retried step finds the
        trials already logged under the run and logs none again."""
        from mlflow.entities import Metric, Param, RunTag

        client = self.client
        existing = client.search_runs([self.experiment_id()], f"tags.mlflow.parentRunId = '{parent_run_id}'", max_results=1000)
        if existing:
            return [r.info.run_id for r in existing]
        now, ids = int(time.time() * 1000), []
        for trial in trials:
            run = client.create_run(self.experiment_id(), run_name=f"trial-{trial['trial']:02d}",
                                    tags={"mlflow.parentRunId": parent_run_id, "trial.kind": str(trial["kind"])})
            client.log_batch(run.info.run_id,
                             metrics=[Metric(k, float(trial[k]), now, 0) for k in metric_keys],
                             params=[Param(k, str(v)) for k, v in trial.items() if k not in metric_keys],
                             tags=[RunTag("mlflow.runName", f"trial-{trial['trial']:02d}")])
            client.set_terminated(run.info.run_id, "FINISHED")
            ids.append(run.info.run_id)
        return ids

    def log_metrics(self, run_id: str, metrics: dict[str, float], model_id: str | None = None) -> None:
        """Metrics on a run, in one call; with `model_id`, linked to that logged model too, so the
        model's page and its registered version's show them (MLflow 3)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0, model_id=model_id) for k, v in metrics.items()])

    def run_metrics(self, run_id: str) -> dict[str, float]:
        return dict(self.client.get_run(run_id).data.metrics)

    def run_params(self, run_id: str) -> dict[str, str]:
        return dict(self.client.get_run(run_id).data.params)
