"""The MLflow UI over the pipeline's tracking store, on loopback only.

    flights-mlflow-ui [--port 5000] [--host 127.0.0.1]

The store is the setting MLFLOW_TRACKING_URI (or the profile's default: SQLite under data/, or
the `mlflow` database of FLIGHTS_POSTGRES_URL); telemetry off.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from resources.settings import configure_process, settings, subprocess_env


def ui_command(host: str, port: int) -> tuple[list[str], dict]:
    """The command and its environment. The store's URI (a PostgreSQL one holds its password) goes
    in through the environment (MLFLOW_BACKEND_STORE_URI, read by `mlflow ui` itself), never the
    command line, which every local user can read (ps, /proc/<pid>/cmdline)."""
    cmd = [str(Path(sys.executable).parent / "mlflow"), "ui", "-h", host, "-p", str(port)]
    return cmd, {**subprocess_env(), "MLFLOW_BACKEND_STORE_URI": settings().mlflow_tracking_uri}


def main(argv=None) -> int:
    configure_process()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default loopback)")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    cmd, env = ui_command(args.host, args.port)
    os.execvpe(cmd[0], cmd, env)  # replaces this process: returns only by failing (OSError)
    return 0


if __name__ == "__main__":
    sys.exit(main())
