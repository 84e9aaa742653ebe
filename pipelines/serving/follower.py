"""The versions a scoring-server worker serves, following the registry: the `champion`, and a
`challenger` in promotion mode `canary` (which answers a share of the flights asked by flight).

- A thread checks the alias every FLIGHTS_SERVE_POLL_SECONDS. A new version is loaded and warmed
  (a one-row and a large request through MLflow's request handling) *before* it takes traffic;
  then one reference is swapped. A version that cannot be loaded (its artifacts missing, no
  served_model package, a warm-up that fails) is not swapped in: the old one keeps serving, the
  failure is logged, shown by `GET /serving` and sent as an alert; it is tried again after
  RETRY_FAILED_SECONDS.
- Worker processes share a `SwapBoard` per alias: each loads and warms the new version on its
  own, and all of them switch at one instant, set once the last one is ready. Without that, each
  would switch at its own moment and a client could see the versions alternate during a move
  (or, for the canary, one flight answered by two versions).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from resources.records import Tag
from resources.registry import CHALLENGER, CHAMPION, ModelRegistry

log = logging.getLogger("flights.serving")
RETRY_FAILED_SECONDS = 60
WARM_ROWS = 65  # beyond served_model.model.SMALL_REQUEST: warms the Pipeline path too
NO_VERSION = 0  # a board's target for "no version" (no canary)


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
    """Holds the version one worker process serves for an alias and moves it, with the other
    workers, when the alias moves (`SwapBoard`). The champion is always served: while the alias
    names nothing, the version loaded keeps serving."""

    role = CHAMPION
    optional = False  # a follower whose alias may name nothing (and then serves nothing)

    def __init__(self, registry: ModelRegistry, poll_seconds: float, board: SwapBoard, on_failure=None):
        self.registry, self.poll_seconds, self.board, self.on_failure = registry, poll_seconds, board, on_failure
        self.current: Served | None = None
        self.prepared: tuple[int, Served | None] | None = None  # (move, version) loaded and warmed, waiting for the instant
        self.reported = 0  # the last move this worker answered (loaded or failed)
        self.failed: dict[str, tuple[float, str]] = {}  # version -> (when, why)
        self.swaps: list[dict] = []
        self.last_check: float | None = None
        self.last_check_error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{self.role}-follower", daemon=True)

    def target_version(self) -> str | None:
        """The version the alias names now (None: none)."""
        mv = self.registry.version_by_alias(CHAMPION)
        return None if mv is None else str(mv.version)

    def start(self) -> None:
        """Load the alias's version now (the server does not start without a champion), then follow it."""
        version = self.target_version()
        if version is None and not self.optional:
            raise ServingRefused("no champion model yet: run `make demo` (or retrain_job) first")
        if version is not None:
            self.current = load_version(self.registry, version)
            log.info(f"serving v{version} as {self.role} (loaded and warmed in {self.current.load_seconds:.2f} s)")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def served(self) -> Served | None:
        """The version for a request arriving now: the prepared one once its instant has passed."""
        prepared = self.prepared
        if prepared is not None:
            instant = self.board.instant(prepared[0])
            if instant is None:
                self.prepared = None  # the move failed or another one began
            elif instant and time.time() >= instant:
                self._switch(prepared[1])
        return self.current

    def _switch(self, served: Served | None) -> None:
        old, self.current, self.prepared = self.current, served, None  # one reference each
        if old is not served:
            was, now = (old.version if old else None), (served.version if served else None)
            self.swaps.append({"from": was, "to": now, "at": time.time(),
                               "load_seconds": round(served.load_seconds, 3) if served else 0.0})
            log.info(f"{self.role}: now v{now} (was v{was})")

    def check_once(self) -> None:
        self.served()  # a switch whose instant passed without a request
        version = self.target_version()
        self.last_check, self.last_check_error = time.time(), None
        if version is None and not self.optional:
            return
        gen = self.board.begin(int(version or NO_VERSION), time.time())
        if gen is None or gen == self.reported:
            return
        self.reported = gen
        if version is None:
            served = None
        elif self.current is not None and version == self.current.version:
            served = self.current  # this worker serves it already (a move back, or a retry)
        else:
            try:
                served = load_version(self.registry, version)
            except Exception as exc:  # the old version keeps serving, in every worker
                why = str(exc)
                first = self.board.failed(gen, why)
                self.failed[version] = (time.time(), why)
                kept = f"v{self.current.version} keeps serving" if self.current else "nothing changes"
                log.error(f"{self.role} moved to v{version} but it cannot be served; {kept}: {why}")
                if first and self.on_failure is not None:
                    self.on_failure(self.role, version, self.current.version if self.current else None, why)
                return
        self.failed.pop(version or "", None)
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
                log.warning(f"{self.role} alias not checked: {self.last_check_error}")

    def status(self) -> dict:
        return {"model": self.registry.model_name, "version": self.current.version if self.current else None,
                "worker_pid": os.getpid(), "workers": self.board.workers, "move": self.board.gen.value,
                "serving_since": self.current.loaded_at if self.current else None, "poll_seconds": self.poll_seconds,
                "last_check": self.last_check, "last_check_error": self.last_check_error, "swaps": self.swaps[-20:],
                "failed_versions": {**{v: why for v, (_, why) in self.failed.items()}, **self.board.failure()}}


class CanaryFollower(ChampionFollower):
    """The challenger while its promotion mode is `canary` (tag challenger.mode), else nothing:
    the version that answers the canary share of the flights asked by flight."""

    role = "canary"
    optional = True

    def target_version(self) -> str | None:
        mv = self.registry.version_by_alias(CHALLENGER)
        return str(mv.version) if mv is not None and dict(mv.tags).get(Tag.CHALLENGER_MODE) == "canary" else None
