"""Serve the champion, following the registry's `champion` alias, on loopback only.

    flights-serve [--port 5001] [--host 127.0.0.1] [--workers 2] [--no-record]

POST a flight by what a caller knows to /predict, e.g. {"carrier": "UA", "flight": 1545, "origin":
"EWR", "dest": "IAH", "scheduled_departure": "2013-01-01T05:15"}, and get its probability of
arriving 15+ minutes late, the features computed here from the warehouse's day (the code of
`flight_features`; pipelines/serving/by_flight.py) and what they knew. Batch clients POST
{"inputs": [{<feature>: value, ...}, ...]} to /invocations and get [P(on time), P(late)] per
flight (the request schema and the scoring: served_model/model.py). Each response names the
version that produced it (`X-Model-Version`). A promotion, an approval or a rollback is served
within FLIGHTS_SERVE_POLL_SECONDS plus the new version's load and warm-up, with no failed or
mixed request; the worker processes switch at one instant (pipelines/serving/follower.py). While
a challenger is in promotion mode `canary`, it answers the flights asked by flight whose key
hashes below FLIGHTS_CANARY_SHARE (one flight, one version; `served_as` in the answer).
`GET /serving` shows the served versions, the swaps, the versions that could not be loaded and
the recorder's counts. Every served flight is
recorded in the warehouse (`served_predictions`) unless --no-record or FLIGHTS_SERVE_RECORD=false.

A request's body and rows are bounded (FLIGHTS_SERVE_MAX_BODY_MB, FLIGHTS_SERVE_MAX_ROWS: 413
beyond), and so is each worker's recorder (FLIGHTS_SERVE_RECORD_MAX_MB). The workers are
uvicorn's own supervisor's (`uvicorn.supervisors.Multiprocess`): a worker that dies or stops
answering its health check is replaced while the others keep serving; one that cannot load the
champion at its start stops the server (exit 1, the reason in the log).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from resources.registry import ModelRegistry, RegistryUnavailable
from resources.settings import configure_process, settings, subprocess_env


class NothingToServe(LookupError):
    """No champion, or one this server cannot run: said in one line, exit code 2."""


def servable(registry: ModelRegistry) -> str:
    """The champion's version, if this repository's scoring server can run it."""
    champion = registry.champion()
    if champion is None:
        raise NothingToServe("no champion model yet: run `make demo` (or retrain_job) first")
    if not champion.build.package:
        raise NothingToServe(
            f"{champion.label} was registered before the served_model package existed: it ships the old "
            "`resources/` folder and cannot be served by this version of the repository. Retrain "
            "(retrain_job), or roll back to a version registered since (rollback_job).")
    return champion.version


def serve_command(registry: ModelRegistry, host: str, port: int, record: bool = True) -> tuple[list[str], dict]:
    """The command (and its environment) that starts this server for `registry`."""
    env = subprocess_env({"MLFLOW_TRACKING_URI": registry.resolved_tracking_uri})
    cmd = [sys.executable, "-m", "pipelines.serving.server", "--host", host, "--port", str(port)]
    return cmd + ([] if record else ["--no-record"]), env


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default loopback)")
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--no-record", action="store_true", help="do not record served requests in the warehouse")
    parser.add_argument("--wait", action="store_true", help="with no champion yet, wait for one instead of exiting")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2); they switch versions "
                        "at one instant")
    return parser.parse_args(argv)


def _alert_unservable(role: str, version: str, serving: str | None, why: str) -> None:
    from resources.alerts import Alert, send

    kept = f"v{serving} keeps serving" if serving else "it answers nothing"
    send(Alert(kind="serving_failed", severity="error", title=f"Serving: {role} v{version} cannot be served; {kept}",
               lines=(why,), fields={"model_version": version, "serving": serving or "none", "role": role}))


def worker_app(board, canary_board, no_record: bool):
    """The app of one worker process (uvicorn's factory, called in the worker): its own follower,
    recorder and door on the shared socket. A champion it cannot load at its start ends it with
    uvicorn's startup failure, which stops the supervisor instead of restarting it in a loop."""
    configure_process(serving=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s [%(process)d] %(name)s %(levelname)s %(message)s")
    from threadpoolctl import threadpool_limits
    from uvicorn.config import STARTUP_FAILURE

    from pipelines.serving.app import FollowingApp
    from pipelines.serving.boundary import MEBIBYTE
    from pipelines.serving.by_flight import DayContexts, FlightDesk
    from pipelines.serving.follower import CanaryFollower, ChampionFollower, ServingRefused
    from pipelines.serving.traffic import ServedTrafficRecorder
    from resources.warehouse import Warehouse

    s = settings()
    follower = ChampionFollower(ModelRegistry(), s.serve_poll_seconds, board, on_failure=_alert_unservable)
    canary = CanaryFollower(ModelRegistry(), s.serve_poll_seconds, canary_board, on_failure=_alert_unservable)
    try:
        follower.start()
    except ServingRefused as exc:
        logging.getLogger("flights.serving").error(f"serve: {exc}")
        sys.exit(STARTUP_FAILURE)
    try:
        canary.start()
    except ServingRefused as exc:  # the champion serves everything; the canary is tried again at the next poll
        logging.getLogger("flights.serving").error(f"canary not served: {exc}")
    threadpool_limits(1)
    warehouse = Warehouse()
    recorder = None if no_record or not s.serve_record else ServedTrafficRecorder(
        warehouse, s.serve_record_seconds, max_bytes=int(s.serve_record_max_mb * MEBIBYTE))
    flights = FlightDesk(DayContexts(warehouse, s.serve_poll_seconds), canary_share=s.canary_share)
    return FollowingApp(follower, recorder, max_body_bytes=int(s.serve_max_body_mb * MEBIBYTE), max_rows=s.serve_max_rows,
                        flights=flights, canary=canary)


def main(argv: list[str] | None = None) -> int:
    configure_process(serving=True)
    args = arguments(argv)
    import functools
    import multiprocessing
    import socket

    import uvicorn
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    from pipelines.serving.follower import SwapBoard

    s = settings()
    registry = ModelRegistry()
    while args.wait and registry.champion() is None:  # a profile started before its first model
        time.sleep(s.serve_poll_seconds)
    try:
        version = servable(registry)
    except (NothingToServe, RegistryUnavailable) as exc:
        print(f"serve: {exc}", file=sys.stderr)
        return 2
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(2048)
    spawn = multiprocessing.get_context("spawn")  # uvicorn's workers are spawned
    board, canary_board = SwapBoard(spawn, args.workers), SwapBoard(spawn, args.workers)  # champion, canary
    # a worker loading a version still answers the supervisor's health check (a thread of its own)
    config = uvicorn.Config(functools.partial(worker_app, board, canary_board, args.no_record), factory=True, workers=args.workers,
                            log_level="warning", access_log=False, lifespan="on", timeout_worker_healthcheck=30)
    supervisor = Multiprocess(config, sockets=[sock])  # SIGINT/SIGTERM: every worker stops, then the server
    print(f"serving {registry.model_name} v{version} on http://{args.host}:{args.port} with {args.workers} worker(s) "
          f"(follows @champion every {s.serve_poll_seconds:g} s, all workers switch at one instant; a dead worker is "
          f"replaced; recording {'off' if args.no_record or not s.serve_record else 'on'})", flush=True)
    supervisor.run()
    if any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes):
        print("serve: a worker could not start (the reason is logged above): the server stops", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
