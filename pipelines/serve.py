"""Serve the champion, following the registry's `champion` alias, on loopback only.

    python -m pipelines.serve [--port 5001] [--host 127.0.0.1] [--no-record]

POST {"inputs": [{<feature>: value, ...}, ...]} to /invocations and get [P(on time), P(late)] per
flight (the request schema and the scoring: served_model/model.py); each response names the
version that produced it (`X-Model-Version`). A promotion, an approval or a rollback is served
within FLIGHTS_SERVE_POLL_SECONDS plus the new version's load and warm-up, with no failed or
mixed request (pipelines/serving_app.py). `GET /serving` shows the served version, the swaps,
the versions that could not be loaded and the recorder's counts. Every served flight is
recorded in the warehouse (`served_predictions`) unless --no-record or FLIGHTS_SERVE_RECORD=false.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from resources.registry import ModelRegistry
from resources.settings import configure_process, settings, subprocess_env


def servable(registry: ModelRegistry) -> str:
    """The champion's version, if this repository's scoring server can run it."""
    champion = registry.champion()
    if champion is None:
        raise SystemExit("no champion model yet: run `make demo` (or retrain_job) first")
    if not champion.build.package:
        raise SystemExit(
            f"{champion.label} was registered before the served_model package existed: it ships the old "
            "`resources/` folder and cannot be served by this version of the repository. Retrain "
            "(retrain_job), or roll back to a version registered since (rollback_job).")
    return champion.version


def serve_command(registry: ModelRegistry, host: str, port: int, record: bool = True) -> tuple[list[str], dict]:
    """The command (and its environment) that starts this server for `registry`."""
    env = subprocess_env({"MLFLOW_TRACKING_URI": registry.resolved_tracking_uri})
    cmd = [sys.executable, "-m", "pipelines.serve", "--host", host, "--port", str(port)]
    return cmd + ([] if record else ["--no-record"]), env


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default loopback)")
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--no-record", action="store_true", help="do not record served requests in the warehouse")
    return parser.parse_args(argv)


def _alert_unservable(version: str, serving: str, why: str) -> None:
    from resources.alerts import Alert, send

    send(Alert(kind="serving_failed", severity="error",
               title=f"Serving: champion v{version} cannot be served; v{serving} keeps serving",
               lines=(why,), fields={"model_version": version, "serving": serving}))


def main(argv: list[str] | None = None) -> None:
    configure_process(serving=True)
    args = arguments(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    import uvicorn
    from threadpoolctl import threadpool_limits

    from pipelines.served_traffic import ServedTrafficRecorder
    from pipelines.serving_app import ChampionFollower, FollowingApp, ServingRefused
    from resources.warehouse import Warehouse

    s = settings()
    registry = ModelRegistry()
    servable(registry)
    follower = ChampionFollower(registry, s.serve_poll_seconds, on_failure=_alert_unservable)
    try:
        follower.start()
    except ServingRefused as exc:
        raise SystemExit(str(exc)) from None
    threadpool_limits(1)
    recorder = None if args.no_record or not s.serve_record else ServedTrafficRecorder(Warehouse(), s.serve_record_seconds)
    print(f"serving {registry.model_name} v{follower.current.version} on http://{args.host}:{args.port} "
          f"(follows @champion every {s.serve_poll_seconds:g} s; recording {'on' if recorder else 'off'})", flush=True)
    uvicorn.run(FollowingApp(follower, recorder), host=args.host, port=args.port, log_level="warning",
                access_log=False, lifespan="on")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
