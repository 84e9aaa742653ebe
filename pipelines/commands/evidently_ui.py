"""The Evidently UI over the local monitoring workspace, on loopback only.

    flights-evidently-ui [--port 8000] [--host 127.0.0.1]

The workspace is data/evidently under FLIGHTS_DATA_DIR, where the monitoring assets file each
day's snapshots when no service is set (FLIGHTS_EVIDENTLY_URL); the links in the Dagster metadata
point here (FLIGHTS_EVIDENTLY_UI_URL, default http://127.0.0.1:8000). Telemetry off.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pipelines.commands.convention import Refused, refused
from resources.settings import configure_process, settings, subprocess_env


def ui_command(host: str, port: int) -> tuple[list[str], dict]:
    folder = settings().evidently_workspace_dir
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [str(Path(sys.executable).parent / "evidently"), "ui", "--workspace", str(folder),
           "--host", host, "--port", str(port)]
    return cmd, subprocess_env()


def main(argv=None) -> int:
    configure_process()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default loopback)")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    s = settings()
    if s.evidently_url:
        return refused("evidently-ui", Refused(f"FLIGHTS_EVIDENTLY_URL is set: the snapshots are in the service at "
                                              f"{s.evidently_url}, not in a local workspace"))
    cmd, env = ui_command(args.host, args.port)
    os.execvpe(cmd[0], cmd, env)  # replaces this process: returns only by failing (OSError)
    return 0


if __name__ == "__main__":
    sys.exit(main())
