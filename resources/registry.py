"""The MLflow tracking store and model registry, as a small resource around `MlflowClient`.

Registry aliases, not stages: `champion` is the deployed version, `previous` the one a rollback
goes back to, `challenger` a candidate that passed the gate and waits (FLIGHTS_PROMOTION_MODE
approve or shadow). Every alias move is recorded on the version (`deploy.events`: who, why,
which Dagster run).
A version is the typed model MLflow's scoring server runs (served_model/model.py) with the
fitted Pipeline inside; batch steps load that Pipeline with the reviewed skops types only.
What the pipeline records on a version goes through the typed records of resources/records.py.
"""

from __future__ import annotations

import contextlib
import json
import re
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from resources.errors import DataProblem
from resources.records import BuildInfo, DeployEvent, GateVerdict, ModelRecord, RetrainTrigger, Tag, TrainingWindow
from resources.settings import REPO_ROOT, settings

MODEL_NAME = "flight_delay_classifier"
EXPERIMENT = "flight-delay"
CHAMPION, PREVIOUS, CHALLENGER = "champion", "previous", "challenger"
EVALUATION_ARTIFACT = "evaluation/evaluation.json"
MODEL_CARD_FOLDER = "model_card"
DATA_VALIDATION_EXPERIMENT = "data-validation"  # the Data Docs page of each validation step
SERVED_MODEL_PACKAGE = REPO_ROOT / "served_model"


class DeploymentRefused(DataProblem):
    """An alias move that cannot be made as asked (no challenger, an unknown version, ...): the
    message says why, and no alias moved."""


class RegistryUnavailable(RuntimeError):
    """The tracking store cannot be reached: transient, the step's retry policy tries again."""


def _unreachable(exc: BaseException) -> bool:
    """A tracking server that does not answer (down, wrong port), as MLflow's http client reports
    it once its own retries are spent; not an answer such as "not found"."""
    import requests

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError)):
            return True
        seen = seen.__cause__ or seen.__context__
    text = str(exc)
    return any(s in text for s in ("Max retries exceeded", "Connection refused", "Failed to establish a new connection"))


@contextlib.contextmanager
def _naming_the_store(registry: ModelRegistry, what: str):
    """Failures to reach the tracking store, or its refusal of the credentials, said as such."""
    try:
        yield
    except (RegistryUnavailable, DataProblem):
        raise
    except Exception as exc:
        registry._raise_refused(exc)
        if _unreachable(exc):
            raise RegistryUnavailable(f"MLflow tracking store {registry.display_tracking_uri} unreachable ({what}): "
                                      f"{str(exc)[:300]}") from exc
        raise


class _Client:
    """`MlflowClient` whose calls name the tracking store when it cannot be reached (a transient
    `RegistryUnavailable`, retried by the step's policy) or when it refuses the credentials."""

    def __init__(self, registry: ModelRegistry, client):
        self._registry, self._client = registry, client

    def __getattr__(self, name):
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            with _naming_the_store(self._registry, name):
                return attr(*args, **kwargs)

        return call


class ModelRegistry(ConfigurableResource):
    """MLflow tracking + registry (MLFLOW_TRACKING_URI; SQLite under data/ by default)."""

    tracking_uri: str | None = Field(default=None, description="MLflow tracking URI; unset: the setting "
                                     "MLFLOW_TRACKING_URI (or the profile's default), read when a step runs.")
    artifact_root: str | None = Field(default=None, description="Where a new experiment keeps its artifacts; "
                                      "unset: the setting MLFLOW_ARTIFACT_ROOT.")
    model_name: str = MODEL_NAME
    experiment_name: str = EXPERIMENT

    @property
    def resolved_tracking_uri(self) -> str:
        return self.tracking_uri or settings().mlflow_tracking_uri

    @property
    def resolved_artifact_root(self) -> str | None:
        return self.artifact_root or settings().mlflow_artifact_root

    @property
    def display_tracking_uri(self) -> str:
        """The tracking URI without its password, for messages and metadata."""
        return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", self.resolved_tracking_uri)

    def _setup(self):
        import mlflow

        uri = self.resolved_tracking_uri
        if uri.startswith("sqlite:///"):
            Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        mlflow.set_tracking_uri(uri)
        return mlflow

    @property
    def client(self):
        mlflow = self._setup()
        return _Client(self, mlflow.MlflowClient(tracking_uri=self.resolved_tracking_uri))

    def experiment_id(self, name: str | None = None) -> str:
        """The id of the pipeline's experiment (or of experiment `name`), created on first use."""
        name = name or self.experiment_name
        client = self.client
        try:
            exp = client.get_experiment_by_name(name)
        except (DataProblem, RegistryUnavailable):  # refused credentials, an unreachable server: said by the client
            raise
        except Exception as exc:  # a bad URI, an unreachable database ...
            self._raise_refused(exc)
            raise RegistryUnavailable(f"MLflow tracking store {self.display_tracking_uri} unreachable: {exc}") from exc
        if exp is not None:
            return exp.experiment_id
        root = self.resolved_artifact_root
        if root is not None and "://" not in root:  # a local folder; an object-store URI is used as it is
            Path(root).mkdir(parents=True, exist_ok=True)
            root = Path(root).resolve().as_uri()
        return client.create_experiment(name, artifact_location=root)

    def _raise_refused(self, exc: Exception) -> None:
        """A tracking server that refuses the credentials: say so (retrying cannot fix it), naming
        the user, never the password."""
        # the HTTP status as MLflow's client maps it: 401 and 403 (not a message that happens to
        # mention a permission, like a SQLite file's)
        if getattr(exc, "error_code", None) in ("UNAUTHENTICATED", "CUSTOMER_UNAUTHORIZED", "PERMISSION_DENIED"):
            user = settings().mlflow_tracking_username
            raise DataProblem(
                f"MLflow tracking server {self.display_tracking_uri} refused the request "
                + (f"of user {user!r}: check MLFLOW_TRACKING_PASSWORD" if user else
                   "without credentials: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD")
            ) from None

    # --- links into the MLflow UI (FLIGHTS_MLFLOW_UI_URL): what the Dagster metadata shows --------

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

    # --- reading versions -------------------------------------------------------------------

    def _version_by_alias(self, alias: str):
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version_by_alias(self.model_name, alias)
        except MlflowException as exc:
            if "RESOURCE_DOES_NOT_EXIST" in str(exc.error_code) or "not found" in str(exc).lower():
                return None
            self._raise_refused(exc)
            raise RegistryUnavailable(f"MLflow registry {self.display_tracking_uri}: {exc}") from exc

    @staticmethod
    def _record(mv) -> ModelRecord:
        return ModelRecord.from_tags(mv.name, mv.version, mv.run_id, dict(mv.tags), aliases=mv.aliases,
                                     source=mv.source, created_ms=mv.creation_timestamp)

    def by_alias(self, alias: str) -> ModelRecord | None:
        """The version holding `alias`, or None."""
        mv = self._version_by_alias(alias)
        return None if mv is None else self._record(mv)

    def champion(self) -> ModelRecord | None:
        return self.by_alias(CHAMPION)

    def record(self, version: str) -> ModelRecord:
        """A registered version by number, or by alias (`champion`)."""
        if not str(version).isdigit():
            found = self.by_alias(str(version))
            if found is None:
                raise LookupError(f"no version of {self.model_name} holds the alias `{version}`")
            return found
        return self._record(self.client.get_model_version(self.model_name, str(version)))

    def load(self, version: str):
        """The sklearn Pipeline of a registered version, read from the version's artifacts with
        the reviewed skops types only (the served model's code is not run)."""
        from served_model.files import PIPELINE_ARTIFACT, load_pipeline

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

    # --- writing a candidate ------------------------------------------------------------------

    def start_training_run(self, window: TrainingWindow, trigger: RetrainTrigger, build: BuildInfo,
                           run_name: str) -> str:
        """A new MLflow run that records a retrain's window, trigger and build; the candidate is
        logged into it later (`register_candidate`), from any host."""
        client = self.client
        run = client.create_run(self.experiment_id(), tags={**build.tags(), **window.tags(), **trigger.tags()},
                                run_name=run_name)
        client.set_terminated(run.info.run_id, "FINISHED")
        return run.info.run_id

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

        mlflow = self._setup()
        # a step run again for the same MLflow run (a retry, or a task a dead worker left to
        # another one) gets the version already registered from it, not a second one
        done = self.client.search_model_versions(f"name='{self.model_name}' and run_id='{run_id}'")
        if done:
            return self.record(str(max(int(v.version) for v in done))), 0.0

        signature = infer_signature(sample, model.predict_proba(sample))
        started = time.perf_counter()
        with _naming_the_store(self, "registering the candidate"), tempfile.TemporaryDirectory() as tmp, \
                mlflow.start_run(run_id=run_id) as run:
            mlflow.log_params(params)
            mlflow.log_metrics(metrics)
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
            tags = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}
        # the version and all its tags in one registry call (a tag per call costs a round trip
        # each through a tracking server)
        with _naming_the_store(self, "registering the candidate"):
            registered = mlflow.register_model(info.model_uri, self.model_name,
                                               tags={Tag.THRESHOLD: f"{threshold:.6f}", **tags, **(version_tags or {})})
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

    def set_version_tags(self, version: str, tags: dict[str, str]) -> None:
        client = self.client
        for key, value in tags.items():
            client.set_model_version_tag(self.model_name, str(version), key, value)

    def record_verdict(self, version: str, verdict: GateVerdict, test_roc_auc: float) -> None:
        self.set_version_tags(version, verdict.tags(test_roc_auc))

    def log_metrics(self, run_id: str, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])

    def log_json(self, run_id: str, artifact_file: str, payload: dict) -> None:
        self.client.log_text(run_id, json.dumps(payload, indent=1), artifact_file)

    def read_json(self, run_id: str, artifact_file: str) -> dict:
        mlflow = self._setup()
        try:
            return json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/{artifact_file}"))
        except Exception as exc:
            self._raise_refused(exc)
            if _unreachable(exc):
                raise RegistryUnavailable(f"MLflow tracking store {self.display_tracking_uri} unreachable (reading "
                                          f"{artifact_file}): {str(exc)[:300]}") from exc
            raise RuntimeError(f"MLflow run {run_id}: artifact {artifact_file} missing or unreadable ({exc})") from exc

    def log_files(self, run_id: str, paths: list[Path], folder: str) -> None:
        client = self.client
        for path in paths:
            client.log_artifact(run_id, str(path), artifact_path=folder)

    def run_metrics(self, run_id: str) -> dict[str, float]:
        return dict(self.client.get_run(run_id).data.metrics)

    def run_params(self, run_id: str) -> dict[str, str]:
        return dict(self.client.get_run(run_id).data.params)

    def pinned_requirements(self, version: str) -> list[str]:
        mlflow = self._setup()
        path = mlflow.pyfunc.get_model_dependencies(f"models:/{self.model_name}/{version}")
        return [line.strip() for line in open(path) if line.strip() and not line.startswith("#")]

    # --- aliases ---------------------------------------------------------------------------------

    def _log_event(self, version: str, kind: str, by: str, reason: str, dagster_run_id: str = "") -> None:
        record = self.record(version)
        event = DeployEvent(kind, datetime.now(UTC).isoformat(timespec="seconds"), by, reason, dagster_run_id)
        events = [e.as_dict() for e in record.events] + [event.as_dict()]
        self.set_version_tags(version, {Tag.DEPLOY_EVENTS: json.dumps(events)})

    def versions(self) -> list[ModelRecord]:
        """Every registered version, oldest first."""
        found = self.client.search_model_versions(f"name='{self.model_name}'")
        return sorted((self._record(mv) for mv in found), key=lambda r: int(r.version))

    def promote(self, version: str, *, by: str = "gate", reason: str = "", dagster_run_id: str = "",
                kind: str = "promoted") -> str | None:
        """Move `champion` to `version`; the old champion keeps `previous`. Returns the old one.
        Repeating it (a retried step) moves nothing and records the event once."""
        client = self.client
        old = self._version_by_alias(CHAMPION)
        if old is not None and str(old.version) == str(version):  # already done (a retried step)
            if not self.record(version).champion_since:
                self._log_event(version, kind, by, reason, dagster_run_id)
            previous = self._version_by_alias(PREVIOUS)
            return None if previous is None else str(previous.version)
        if old is not None:
            client.set_registered_model_alias(self.model_name, PREVIOUS, str(old.version))
        client.set_registered_model_alias(self.model_name, CHAMPION, str(version))  # the move
        self._log_event(version, kind, by, reason, dagster_run_id)
        return None if old is None else str(old.version)

    # --- the challenger (FLIGHTS_PROMOTION_MODE approve | shadow) ---------------------------------

    def challenger(self) -> ModelRecord | None:
        return self.by_alias(CHALLENGER)

    def set_challenger(self, version: str, mode: str, since_day: str, *, by: str, reason: str,
                       dagster_run_id: str = "") -> str | None:
        """`challenger` to `version`, waiting for a person (`approve`) or its shadow days
        (`shadow`); a challenger already waiting is superseded. Returns the superseded one."""
        old = self.challenger()
        if old is not None and old.version == str(version):
            return None  # already done (a retried step)
        if old is not None:
            self._end_challenger(old.version, "superseded", by, f"replaced by v{version}", dagster_run_id)
        self.set_version_tags(version, {Tag.CHALLENGER_MODE: mode, Tag.CHALLENGER_SINCE: since_day})
        self.client.set_registered_model_alias(self.model_name, CHALLENGER, str(version))
        self._log_event(version, "challenger", by, f"{mode}: {reason}", dagster_run_id)
        return None if old is None else old.version

    def _end_challenger(self, version: str, kind: str | None, by: str, reason: str, dagster_run_id: str) -> None:
        client = self.client
        if (holder := self._version_by_alias(CHALLENGER)) is not None and str(holder.version) == str(version):
            client.delete_registered_model_alias(self.model_name, CHALLENGER)
        for key in (Tag.CHALLENGER_MODE, Tag.CHALLENGER_SINCE):
            with contextlib.suppress(Exception):
                client.delete_model_version_tag(self.model_name, str(version), key)
        if kind is not None:
            self._log_event(version, kind, by, reason, dagster_run_id)

    def _waiting_challenger(self, expected: str | None) -> ModelRecord:
        waiting = self.challenger()
        if waiting is None:
            raise DeploymentRefused(f"no challenger waits: no version of {self.model_name} holds the alias "
                                    f"`{CHALLENGER}` (nothing was moved)")
        if expected and str(expected).removeprefix("v") != waiting.version:
            raise DeploymentRefused(f"v{str(expected).removeprefix('v')} is not the challenger: v{waiting.version} is "
                                    "(nothing was moved)")
        return waiting

    def _deployable(self, record: ModelRecord, role: str) -> None:
        """Refuse a version the scoring server could not run (no package, artifacts missing)."""
        if not record.build.package:
            raise DeploymentRefused(f"{role} {record.label} was registered before the served_model package and "
                                    "cannot be served (nothing was moved)")
        try:
            self.load(record.version)
        except RuntimeError as exc:
            raise DeploymentRefused(f"{role} {record.label} cannot be deployed: {exc} (nothing was moved)") from exc

    def approve_challenger(self, *, by: str, reason: str, dagster_run_id: str = "", expected: str | None = None,
                           ) -> tuple[str, str | None]:
        """The waiting challenger becomes the champion (the old one keeps `previous`); returns
        (new champion, old champion)."""
        _needs_reason(by, reason)
        waiting = self._waiting_challenger(expected)
        self._deployable(waiting, "challenger")
        old = self.promote(waiting.version, by=by, reason=reason, dagster_run_id=dagster_run_id, kind="approved")
        self._end_challenger(waiting.version, None, by, reason, dagster_run_id)  # the approval is its event
        return waiting.version, old

    def reject_challenger(self, *, by: str, reason: str, dagster_run_id: str = "", expected: str | None = None,
                          kind: str = "rejected") -> str:
        """The waiting challenger loses its alias (`rejected`, `expired` or `dropped`)."""
        _needs_reason(by, reason)
        waiting = self._waiting_challenger(expected)
        self._end_challenger(waiting.version, kind, by, reason, dagster_run_id)
        return waiting.version

    # --- rollback -------------------------------------------------------------------------------

    def rollback(self, target: str | None = None, *, by: str = "operator", reason: str = "",
                 dagster_run_id: str = "") -> tuple[str, str, str | None]:
        """`champion` back to `target` (default: the `previous` version). The version rolled back
        from is marked and never restored by a rollback; `previous` moves to the newest other
        version that was champion before and was not rolled back (or is removed). Returns (rolled
        back from, now champion, now previous)."""
        _needs_reason(by, reason)
        current = self.champion()
        if current is None:
            raise DeploymentRefused("no champion to roll back (nothing was moved)")
        if target is None or str(target).strip() in ("", PREVIOUS):
            to = self.by_alias(PREVIOUS)
            if to is None:
                raise DeploymentRefused(f"no `{PREVIOUS}` version to roll back to: name one (target_version) "
                                        "(nothing was moved)")
        else:
            to = self._existing(str(target).strip().removeprefix("v"))
        if to.version == current.version:
            raise DeploymentRefused(f"{to.label} is the champion already: nothing to roll back to (nothing was moved)")
        if (event := to.rolled_back) is not None:
            raise DeploymentRefused(f"{to.label} was rolled back on {event.at} by {event.by} ({event.reason}): a rollback "
                                    "never restores it; choose another version (nothing was moved)")
        self._deployable(to, "rollback target")
        client = self.client
        client.set_registered_model_alias(self.model_name, CHAMPION, to.version)  # the move
        self._log_event(to.version, "restored", by, f"rollback from v{current.version}: {reason}", dagster_run_id)
        self._log_event(current.version, "rolled_back", by, reason, dagster_run_id)
        earlier = [r for r in self.versions() if r.champion_since and r.rolled_back is None
                   and r.version not in (to.version, current.version)]
        previous = max(earlier, key=lambda r: r.champion_since, default=None)
        if previous is not None:
            client.set_registered_model_alias(self.model_name, PREVIOUS, previous.version)
        elif self._version_by_alias(PREVIOUS) is not None:
            client.delete_registered_model_alias(self.model_name, PREVIOUS)
        return current.version, to.version, None if previous is None else previous.version

    def _existing(self, version: str) -> ModelRecord:
        known = {r.version: r for r in self.versions()}
        if version not in known:
            listed = ", ".join(list(known)[-10:]) or "none"
            raise DeploymentRefused(f"version {version!r} of {self.model_name} does not exist (registered: {listed}); "
                                    "nothing was moved")
        return known[version]


def _needs_reason(by: str, reason: str) -> None:
    if not (by or "").strip() or not (reason or "").strip():
        raise DeploymentRefused("an alias move needs who asks for it and why (approver / requested_by and reason); "
                                "nothing was moved")
