"""The scoring server that follows the registry: MLflow's own scoring app for the version that
holds `champion` now, swapped when the alias moves.

- A thread checks the alias every FLIGHTS_SERVE_POLL_SECONDS. A new version is loaded and warmed
  (a one-row and a large request through MLflow's request handling) *before* it takes traffic;
  then one reference is swapped. A request is served whole by the version it started with, and
  its response names that version (`X-Model-Version`). A version that cannot be loaded (its
  artifacts missing, no served_model package, a warm-up that fails) is not swapped in: the old
  one keeps serving, the failure is logged, shown by `GET /serving` and sent as an alert; it is
  tried again after RETRY_FAILED_SECONDS.
- Each version's app is `mlflow.pyfunc.scoring_server.init(model)`: MLflow's request formats,
  its 400 naming the field of a bad request and the served model's small-request fast path
  (served_model/model.py) are unchanged.
- Served requests go to the warehouse through `ServedTrafficRecorder` (off the request path).

One process: two worker processes would each swap at their own moment, and a client could see
the versions alternate during a move. Scoring runs in MLflow's thread pool inside it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from resources.registry import CHAMPION, ModelRegistry

log = logging.getLogger("flights.serving")
RETRY_FAILED_SECONDS = 60
WARM_ROWS = 65  # beyond served_model.model.SMALL_REQUEST: warms the Pipeline path too


class ServingRefused(RuntimeError):
    """A version this server will not serve (said why)."""


@dataclass(frozen=True)
class Served:
    version: str
    app: Any  # MLflow's scoring app (FastAPI) for the version
    loaded_at: float
    load_seconds: float


def warm_rows(model) -> list[dict]:
    """Rows the version's own fitted encoder knows (its first category of each column)."""
    from served_model.features import FEATURE_COLUMNS_NUMERIC

    scorer = model.unwrap_python_model().scorer
    row = {c: 1.0 for c in FEATURE_COLUMNS_NUMERIC}
    row.update({c: next(iter(table)) for c, table in scorer.lookup.items()})
    row["day_of_year"] = 1.0
    return [row]


def load_version(registry: ModelRegistry, version: str) -> Served:
    """Load a registered version into its own scoring app and warm it; raises if it cannot serve."""
    import mlflow.pyfunc
    from mlflow.pyfunc import scoring_server

    started = time.perf_counter()
    record = registry.record(version)
    if not record.build.package:
        raise ServingRefused(f"{record.label} was registered before the served_model package existed and cannot be "
                             "served by this repository: retrain (retrain_job) or roll back (rollback_job)")
    registry._setup()
    try:
        model = mlflow.pyfunc.load_model(f"models:/{registry.model_name}/{version}")
    except Exception as exc:
        raise ServingRefused(f"{record.label}: artifacts missing or unreadable ({str(exc)[:300]})") from exc
    schema = model.metadata.get_input_schema()
    rows = warm_rows(model)
    for batch in (rows, rows * WARM_ROWS):
        answer = scoring_server.invocations(json.dumps({"inputs": batch}), "application/json", model, schema)
        if answer.status != 200:
            raise ServingRefused(f"{record.label}: warm-up request refused ({answer.status}: {answer.response[:300]})")
    return Served(version, scoring_server.init(model), time.time(), time.perf_counter() - started)


class ChampionFollower:
    """Holds the served version and moves it when the `champion` alias moves."""

    def __init__(self, registry: ModelRegistry, poll_seconds: float, on_failure=None):
        self.registry, self.poll_seconds, self.on_failure = registry, poll_seconds, on_failure
        self.current: Served | None = None
        self.failed: dict[str, tuple[float, str]] = {}  # version -> (when, why)
        self.swaps: list[dict] = []
        self.last_check: float | None = None
        self.last_check_error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="champion-follower", daemon=True)

    def champion_version(self) -> str | None:
        mv = self.registry._version_by_alias(CHAMPION)
        return None if mv is None else str(mv.version)

    def start(self) -> None:
        """Load the champion now (the server does not start without one), then follow it."""
        version = self.champion_version()
        if version is None:
            raise ServingRefused("no champion model yet: run `make demo` (or retrain_job) first")
        self.current = load_version(self.registry, version)
        log.info(f"serving v{version} (loaded and warmed in {self.current.load_seconds:.2f} s)")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def check_once(self) -> None:
        version = self.champion_version()
        self.last_check, self.last_check_error = time.time(), None
        if version is None or (self.current is not None and version == self.current.version):
            return
        failed = self.failed.get(version)
        if failed is not None and time.time() - failed[0] < RETRY_FAILED_SECONDS:
            return
        try:
            served = load_version(self.registry, version)
        except Exception as exc:  # the old version keeps serving
            why = str(exc)
            first = version not in self.failed
            self.failed[version] = (time.time(), why)
            log.error(f"champion moved to v{version} but it cannot be served; v{self.current.version} keeps serving: {why}")
            if first and self.on_failure is not None:
                self.on_failure(version, self.current.version, why)
            return
        old, self.current = self.current, served  # the swap: one reference
        self.failed.pop(version, None)
        self.swaps.append({"from": old.version if old else None, "to": version, "at": served.loaded_at,
                           "load_seconds": round(served.load_seconds, 3)})
        log.info(f"now serving v{version} (was v{old.version if old else None}; loaded and warmed in "
                    f"{served.load_seconds:.2f} s)")

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.check_once()
            except Exception as exc:  # the registry unreachable: keep serving what we have
                self.last_check_error = f"{type(exc).__name__}: {str(exc)[:300]}"
                log.warning(f"champion alias not checked: {self.last_check_error}")

    def status(self) -> dict:
        return {"model": self.registry.model_name, "version": self.current.version if self.current else None,
                "serving_since": self.current.loaded_at if self.current else None, "poll_seconds": self.poll_seconds,
                "last_check": self.last_check, "last_check_error": self.last_check_error, "swaps": self.swaps[-20:],
                "failed_versions": {v: why for v, (_, why) in self.failed.items()}}


class FollowingApp:
    """The ASGI app: each request goes to the app of the version served when it arrived, and its
    response carries `X-Model-Version`; `/serving` reports the follower and the recorder."""

    def __init__(self, follower: ChampionFollower, recorder=None):
        self.follower, self.recorder = follower, recorder

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.recorder is not None:
                    self.recorder.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.follower.stop()
                if self.recorder is not None:
                    self.recorder.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await self._lifespan(receive, send)
        if scope["type"] != "http":
            return None
        served = self.follower.current
        header = (b"x-model-version", served.version.encode())
        if scope["path"] == "/serving":
            body = json.dumps({**self.follower.status(),
                               "recording": self.recorder.status() if self.recorder else "off"}).encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json"), header]})
            await send({"type": "http.response.body", "body": body})
            return None
        record = self.recorder is not None and scope["path"] == "/invocations" and scope["method"] == "POST"
        if not record:
            async def send_named(message):
                if message["type"] == "http.response.start":
                    message = {**message, "headers": [*message.get("headers", []), header]}
                await send(message)

            return await served.app(scope, receive, send_named)

        request_body, response_body, status = [], [], [0]

        async def receive_kept():
            message = await receive()
            if message["type"] == "http.request":
                request_body.append(message.get("body", b""))
            return message

        async def send_kept(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message = {**message, "headers": [*message.get("headers", []), header]}
            elif message["type"] == "http.response.body":
                response_body.append(message.get("body", b""))
            await send(message)

        await served.app(scope, receive_kept, send_kept)
        if status[0] == 200:
            self.recorder.offer(served.version, b"".join(request_body), b"".join(response_body), time.time())
        return None
