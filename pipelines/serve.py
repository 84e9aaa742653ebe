"""Serve the current champion with MLflow's own scoring server, on loopback only.

    python -m pipelines.serve [--port 5001] [--host 127.0.0.1]

Runs `mlflow models serve -m models:/<name>@champion --env-manager local`; POST
{"inputs": [{<feature>: value, ...}, ...]} to /invocations, get [P(on time), P(late)] per flight
(the request schema and the scoring: served_model/model.py).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from resources.registry import CHAMPION, ModelRegistry
from resources.settings import configure_process, subprocess_env


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


def serve_command(registry: ModelRegistry, host: str, port: int, workers: int = 2) -> tuple[list[str], dict]:
    env = subprocess_env({"MLFLOW_TRACKING_URI": registry.resolved_tracking_uri})
    # requests are single rows or small batches: OpenMP threads in the boosted trees cost more
    # than they save there (11 ms -> 2 ms per row measured); concurrency comes from the workers
    env["OMP_NUM_THREADS"] = "1"
    env["UVICORN_ACCESS_LOG"] = "false"  # a log line per request costs more than the request
    # `mlflow models serve` starts uvicorn from PATH: put this environment's bin first
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    cmd = [
        str(Path(bin_dir) / "mlflow"), "models", "serve",
        "-m", f"models:/{registry.model_name}@{CHAMPION}",
        "--env-manager", "local", "-h", host, "-p", str(port), "--workers", str(workers),
    ]
    return cmd, env


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default loopback)")
    parser.add_argument("--port", type=int, default=5001)
    return parser.parse_args(argv)


def main() -> None:
    configure_process()
    args = arguments()
    registry = ModelRegistry()
    servable(registry)
    cmd, env = serve_command(registry, args.host, args.port)
    print(" ".join(cmd), flush=True)
    os.execvpe(cmd[0], cmd, env)


if __name__ == "__main__":
    main()
