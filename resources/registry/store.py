"""The connection to the MLflow tracking store and registry: where it is, a client whose calls
name the store when it cannot be reached or refuses the credentials, and the errors a caller
can tell apart. No Dagster: the scoring server, the operator commands and the steps share it.
"""

from __future__ import annotations

import contextlib
import math
import re
from dataclasses import dataclass
from pathlib import Path

from resources.errors import DataProblem
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


def unreachable(exc: BaseException) -> bool:
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


def timed_out(exc: BaseException) -> bool:
    """A tracking server that took the connection and did not answer in time."""
    import requests

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (requests.exceptions.Timeout, TimeoutError)):
            return True
        seen = seen.__cause__ or seen.__context__
    return "Read timed out" in str(exc)


@contextlib.contextmanager
def naming_the_store(registry: RegistryStore, what: str):
    """Failures to reach the tracking store, or its refusal of the credentials, said as such."""
    try:
        yield
    except (RegistryUnavailable, DataProblem):
        raise
    except Exception as exc:
        registry.raise_refused(exc)
        if timed_out(exc):
            raise RegistryUnavailable(f"MLflow tracking store {registry.display_tracking_uri} did not answer within "
                                      f"{max(1, math.ceil(settings().service_timeout))} s ({what}; FLIGHTS_SERVICE_TIMEOUT)") from exc
        if unreachable(exc):
            raise RegistryUnavailable(f"MLflow tracking store {registry.display_tracking_uri} unreachable ({what}): "
                                      f"{str(exc)[:300]}") from exc
        raise


class _Client:
    """`MlflowClient` whose calls name the tracking store when it cannot be reached (a transient
    `RegistryUnavailable`, retried by the step's policy) or when it refuses the credentials."""

    def __init__(self, registry: RegistryStore, client):
        self._registry, self._client = registry, client

    def __getattr__(self, name):
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            with naming_the_store(self._registry, name):
                return attr(*args, **kwargs)

        return call


@dataclass(frozen=True)
class RegistryStore:
    """Where the registry is: the tracking store (MLFLOW_TRACKING_URI when `tracking_uri` is
    unset, read at each call so a process sees the settings it runs with), the artifact root of
    new experiments, the model's and the experiment's names; and the client whose calls say so
    when that store cannot be reached or refuses the credentials."""

    tracking_uri: str | None = None
    artifact_root: str | None = None
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

    def mlflow_module(self):
        """The `mlflow` module, its tracking URI set to this store (the fluent API, artifacts), and
        its http client's deadline to FLIGHTS_SERVICE_TIMEOUT (MLflow reads it at each request;
        whole seconds): a tracking server that accepts and never answers fails the call."""
        import mlflow
        from mlflow.environment_variables import MLFLOW_HTTP_REQUEST_TIMEOUT

        MLFLOW_HTTP_REQUEST_TIMEOUT.set(str(max(1, math.ceil(settings().service_timeout))))
        uri = self.resolved_tracking_uri
        if uri.startswith("sqlite:///"):
            Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        mlflow.set_tracking_uri(uri)
        return mlflow

    @property
    def client(self):
        mlflow = self.mlflow_module()
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
            self.raise_refused(exc)
            raise RegistryUnavailable(f"MLflow tracking store {self.display_tracking_uri} unreachable: {exc}") from exc
        if exp is not None:
            return exp.experiment_id
        root = self.resolved_artifact_root
        if root is not None and "://" not in root:  # a local folder; an object-store URI is used as it is
            Path(root).mkdir(parents=True, exist_ok=True)
            root = Path(root).resolve().as_uri()
        return client.create_experiment(name, artifact_location=root)

    def raise_refused(self, exc: Exception) -> None:
        """A tracking server that refuses the credentials: say so (retrying cannot fix it), naming
        the user, never the password."""
        # the HTTP status as MLflow's client maps it: 401 and 403 (not a message that happens to
        # mention a permission, like a SQLite file's)
        if getattr(exc, "error_code", None) in ("UNAUTHENTICATED", "CUSTOMER_UNAUTHORIZED", "PERMISSION_DENIED"):
            user = settings().mlflow_tracking_username
            if "Invalid Host header" in str(exc):  # MLflow's DNS-rebinding guard, not the credentials
                raise DataProblem(
                    f"MLflow tracking server {self.display_tracking_uri} refused the request's Host header: start the "
                    "server with this host and port among its --allowed-hosts") from None
            raise DataProblem(
                f"MLflow tracking server {self.display_tracking_uri} refused the request "
                + (f"of user {user!r}: check MLFLOW_TRACKING_PASSWORD" if user else
                   "without credentials: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD")
            ) from None
