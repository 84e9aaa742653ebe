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
- A request to /invocations passes the server's door first (pipelines/serving/boundary.py): its
  body bounded in bytes and rows, text no store keeps and non-finite numbers refused naming the
  field, error answers without stack traces or echoed input.
- Served requests go to the warehouse through `ServedTrafficRecorder` (off the request path).

Worker processes (`--workers`, default 2) share a listening socket and a `SwapBoard`: each
loads and warms the new version on its own, and all of them switch at one instant, set once the
last one is ready. Without that, each would switch at its own moment and a client could see the
versions alternate during a move.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from resources.registry import CHAMPION, ModelRegistry

log = logging.getLogger("flights.serving")
RETRY_FAILED_SECONDS = 60
PREDICT_MAX_BYTES = 16 << 10  # one flight's fields
EXAMPLE_FLIGHT = ('{"carrier": "UA", "flight": 1545, "origin": "EWR", "dest": "IAH", '
                  '"scheduled_departure": "2013-01-01T05:15"}')
WARM_ROWS = 65  # beyond served_model.model.SMALL_REQUEST: warms the Pipeline path too


class ServingRefused(RuntimeError):
    """A version this server will not serve (said why)."""


@dataclass(frozen=True)
class Served:
    version: str
    app: Any  # MLflow's scoring app (FastAPI) for the version
    loaded_at: float
    load_seconds: float
    row_type: Any = None  # the pydantic type the version checks each flight against (error answers)
    scorer: Any = None  # the version's own scorer (served_model FastScorer): /predict's one flight


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
    registry.mlflow_module()
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
    from pipelines.serving.boundary import row_type

    return Served(version, scoring_server.init(model), time.time(), time.perf_counter() - started, row_type(model),
                  model.unwrap_python_model().scorer)


SETTLE_SECONDS = 1.0  # after a switch instant, before another move may begin
SWITCH_MARGIN = 0.2  # from the last worker ready to the switch instant


class SwapBoard:
    """What the worker processes share about the move in progress: which version it is to, how
    many workers have loaded and warmed it, and the instant at which all of them switch.

    Every worker loads the new version on its own; the last one to be ready sets the switch
    instant. From that instant every request, in every worker, is served by the new version
    (each checks the clock on the request path): a later request never gets an older version
    than an earlier one, so a client sees at most one change per alias move. A worker that
    cannot load the version marks the move failed: no worker switches, the old version keeps
    serving, and the move is tried again after RETRY_FAILED_SECONDS."""

    def __init__(self, ctx, workers: int):
        self.workers = workers
        self.lock = ctx.Lock()
        self.gen = ctx.RawValue("q", 0)  # the move's number
        self.target = ctx.RawValue("q", 0)  # the version it moves to
        self.ready = ctx.RawValue("q", 0)
        self.failed_at = ctx.RawValue("d", 0.0)  # 0: not failed
        self.switch_at = ctx.RawValue("d", 0.0)  # 0: not yet decided
        self.why = ctx.RawArray("c", 1000)  # why the last failed move failed
        self.alerted = ctx.RawValue("q", 0)  # the version whose failure was last told

    def begin(self, version: int, now: float) -> int | None:
        """The move to `version` (started now if it is a new one); None: not now (a switch is
        settling, or the last try failed less than RETRY_FAILED_SECONDS ago)."""
        with self.lock:
            failed = self.failed_at.value
            if self.target.value == version and not failed:
                return self.gen.value
            if self.switch_at.value and now < self.switch_at.value + SETTLE_SECONDS:
                return None
            if failed and self.target.value == version and now < failed + RETRY_FAILED_SECONDS:
                return None
            self.switch_at.value = 0.0  # before the new number: a reader of the number sees no instant
            self.ready.value, self.failed_at.value, self.target.value = 0, 0.0, version
            self.gen.value += 1
            return self.gen.value

    def loaded(self, gen: int) -> None:
        with self.lock:
            if self.gen.value == gen and not self.failed_at.value:
                self.ready.value += 1
                if self.ready.value >= self.workers:
                    self.switch_at.value = time.time() + SWITCH_MARGIN

    def failed(self, gen: int, why: str) -> bool:
        """Records that move `gen` failed; True for the first worker to record the first failure
        of its version (that worker tells people, once: every worker tries the load, two may fail
        at the same moment, and a failed version is tried again later)."""
        with self.lock:
            if self.gen.value != gen or self.failed_at.value:
                return False
            self.failed_at.value = time.time()
            self.why.value = why.encode()[:999]
            first = self.alerted.value != self.target.value
            self.alerted.value = self.target.value
            return first

    def failure(self) -> dict[str, str]:
        """The version the last move failed to reach, and why (empty once a move succeeded)."""
        if not self.failed_at.value:
            return {}
        return {str(self.target.value): self.why.value.decode(errors="replace")}

    def instant(self, gen: int) -> float | None:
        """The switch instant of move `gen`: a time, 0.0 if not decided yet, None if the move
        failed or was superseded."""
        if self.gen.value != gen or self.failed_at.value:
            return None
        return self.switch_at.value


class ChampionFollower:
    """Holds the served version of one worker process and moves it, with the other workers,
    when the `champion` alias moves (`SwapBoard`)."""

    def __init__(self, registry: ModelRegistry, poll_seconds: float, board: SwapBoard, on_failure=None):
        self.registry, self.poll_seconds, self.board, self.on_failure = registry, poll_seconds, board, on_failure
        self.current: Served | None = None
        self.prepared: tuple[int, Served] | None = None  # (move, version) loaded and warmed, waiting for the instant
        self.reported = 0  # the last move this worker answered (loaded or failed)
        self.failed: dict[str, tuple[float, str]] = {}  # version -> (when, why)
        self.swaps: list[dict] = []
        self.last_check: float | None = None
        self.last_check_error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="champion-follower", daemon=True)

    def champion_version(self) -> str | None:
        mv = self.registry.version_by_alias(CHAMPION)
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

    def served(self) -> Served:
        """The version for a request arriving now: the prepared one once its instant has passed."""
        prepared = self.prepared
        if prepared is not None:
            instant = self.board.instant(prepared[0])
            if instant is None:
                self.prepared = None  # the move failed or another one began
            elif instant and time.time() >= instant:
                self._switch(prepared[1])
        return self.current

    def _switch(self, served: Served) -> None:
        old, self.current, self.prepared = self.current, served, None  # one reference each
        if old is not served:
            self.swaps.append({"from": old.version, "to": served.version, "at": time.time(),
                               "load_seconds": round(served.load_seconds, 3)})
            log.info(f"now serving v{served.version} (was v{old.version}; loaded and warmed in {served.load_seconds:.2f} s)")

    def check_once(self) -> None:
        self.served()  # a switch whose instant passed without a request
        version = self.champion_version()
        self.last_check, self.last_check_error = time.time(), None
        if version is None:
            return
        gen = self.board.begin(int(version), time.time())
        if gen is None or gen == self.reported:
            return
        self.reported = gen
        if version == self.current.version:
            served = self.current  # this worker serves it already (a move back, or a retry)
        else:
            try:
                served = load_version(self.registry, version)
            except Exception as exc:  # the old version keeps serving, in every worker
                why = str(exc)
                first = self.board.failed(gen, why)
                self.failed[version] = (time.time(), why)
                log.error(f"champion moved to v{version} but it cannot be served; v{self.current.version} keeps serving: {why}")
                if first and self.on_failure is not None:
                    self.on_failure(version, self.current.version, why)
                return
        self.failed.pop(version, None)
        self.prepared = (gen, served)
        self.board.loaded(gen)
        deadline = time.time() + 120  # the other workers load it too; then all switch at one instant
        while time.time() < deadline and not self._stop.is_set():
            instant = self.board.instant(gen)
            if instant is None:
                self.prepared = None
                return
            if instant and time.time() >= instant:
                self.served()
                return
            time.sleep(0.01)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.check_once()
            except Exception as exc:  # the registry unreachable: keep serving what we have
                self.last_check_error = f"{type(exc).__name__}: {str(exc)[:300]}"
                log.warning(f"champion alias not checked: {self.last_check_error}")

    def status(self) -> dict:
        return {"model": self.registry.model_name, "version": self.current.version if self.current else None,
                "worker_pid": os.getpid(), "workers": self.board.workers, "move": self.board.gen.value,
                "serving_since": self.current.loaded_at if self.current else None, "poll_seconds": self.poll_seconds,
                "last_check": self.last_check, "last_check_error": self.last_check_error, "swaps": self.swaps[-20:],
                "failed_versions": {**{v: why for v, (_, why) in self.failed.items()}, **self.board.failure()}}


class FollowingApp:
    """The ASGI app of one worker: each request goes to the app of the version served when it arrived, and its
    response carries `X-Model-Version`; /invocations passes the door first (boundary.py); `/serving`
    reports the follower and the recorder."""

    def __init__(self, follower: ChampionFollower, recorder=None, max_body_bytes: int = 16 << 20,
                 max_rows: int = 10_000, flights=None):
        self.follower, self.recorder, self.flights = follower, recorder, flights  # flights: by_flight.FlightDesk (/predict)
        self.max_body_bytes, self.max_rows = max_body_bytes, max_rows
        self.worker = str(os.getpid()).encode()  # X-Serving-Worker: which worker process answered

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.recorder is not None:
                    self.recorder.start()
                if self.flights is not None:
                    self.flights.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.follower.stop()
                if self.recorder is not None:
                    self.recorder.stop()
                if self.flights is not None:
                    self.flights.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _answer(self, send, status: int, body: bytes, headers: list) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                *headers]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        from pipelines.serving import boundary

        if scope["type"] == "lifespan":
            return await self._lifespan(receive, send)
        if scope["type"] != "http":
            return None
        served = self.follower.served()
        named = [(b"x-model-version", served.version.encode()), (b"x-serving-worker", self.worker)]
        if scope["path"] == "/serving":
            body = json.dumps({**self.follower.status(),
                               "recording": self.recorder.status() if self.recorder else "off",
                               "by_flight": self.flights.status() if self.flights else "off"}).encode()
            return await self._answer(send, 200, body, named)
        if scope["path"] == "/predict" and scope["method"] == "POST" and self.flights is not None:
            return await self._predict(scope, receive, send, served, named)
        if scope["path"] != "/invocations" or scope["method"] != "POST":
            return await served.app(scope, receive, self._named(send, named))
        try:
            body = await boundary.read_body(scope, receive, self.max_body_bytes)
            rows = boundary.parse(scope, body, self.max_rows)
        except boundary.Refused as refused:
            return await self._answer(send, refused.status, boundary.error_body(refused.code, refused.message), named)
        except boundary.Disconnected:
            return None
        sent = False

        async def again():  # the body read above, then whatever the client does next
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        status, start, answer = [0], [None], []

        async def send_checked(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                if status[0] >= 400:  # held: the answer is rewritten (no trace, no input)
                    start[0] = message
                    return
                message = {**message, "headers": [*message.get("headers", []), *named]}
            elif message["type"] == "http.response.body":
                if status[0] >= 400 or self.recorder is not None:
                    answer.append(message.get("body", b""))
                if status[0] >= 400:
                    if not message.get("more_body", False):
                        clean = boundary.scrubbed(b"".join(answer), rows, served.row_type)
                        await self._answer(send, status[0], clean, named)
                    return
            await send(message)

        await served.app(scope, again, send_checked)
        if self.recorder is not None and status[0] == 200:
            self.recorder.offer(served.version, body, b"".join(answer), time.time())
        return None

    async def _predict(self, scope, receive, send, served: Served, named: list) -> None:
        """One flight named by what a caller knows: its features computed here (by_flight.py)."""
        from pipelines.serving import boundary
        from pipelines.serving.by_flight import BadFlight, DayUnavailable

        try:
            body = await boundary.read_body(scope, receive, PREDICT_MAX_BYTES)
            request = boundary.json_body(scope, body, EXAMPLE_FLIGHT)
            answer = self.flights.answer(request, served)
        except boundary.Refused as refused:
            return await self._answer(send, refused.status, boundary.error_body(refused.code, refused.message), named)
        except boundary.Disconnected:
            return None
        except BadFlight as bad:
            return await self._answer(send, 400, boundary.error_body("BAD_REQUEST", str(bad)), named)
        except DayUnavailable as unavailable:
            return await self._answer(send, 503, boundary.error_body("TEMPORARILY_UNAVAILABLE", str(unavailable)), named)
        said = json.dumps(answer).encode()
        await self._answer(send, 200, said, named)
        if self.recorder is not None:  # the answer names the flight and holds its features
            self.recorder.offer_answer(served.version, said, time.time())
        return None

    @staticmethod
    def _named(send, named: list):
        async def send_named(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *named]}
            await send(message)
        return send_named
