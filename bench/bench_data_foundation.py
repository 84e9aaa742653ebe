"""Benchmark of the data half: figures printed and written to bench/results/.

1. Backfill of all 365 days (ingestion, validation, features) as ONE run through the Dagster
   CLI, process start included, on a fresh instance and warehouse: wall time and peak memory.
2. A plain pandas script computing the same tables (bench/plain_pandas.py): wall time; ratio.
   And the floor: the same graph with empty assets (bench/dagster_event_floor.py), i.e. what
   Dagster's per-day materializations and check evaluations cost by themselves.
   Also the floor on Dagster's ConsolidatedSqliteEventLogStorage (one SQLite file for every run).
3. One day through the three stages via the CLI, process start included, alternating with the
   same graph of empty assets (the CLI floor); median of 3 days each and the ratio.

    make bench          # or: python bench/bench_data_foundation.py [--skip-year]
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
BIN = Path(sys.executable).parent

from resources.settings import TELEMETRY_OFF  # noqa: E402


def _child_peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def _timed(cmd: list[str], env: dict, cwd: Path = REPO) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one command in a fresh child process (run from `cwd`)."""
    # getrusage(RUSAGE_CHILDREN) reports the largest child so far: run each measurement in its
    # own helper process so that the figure belongs to this command alone
    helper = (
        "import resource,subprocess,sys,time,json;t=time.perf_counter();"
        "r=subprocess.run(sys.argv[1:],stdout=subprocess.DEVNULL,stderr=subprocess.PIPE,text=True);"
        "w=time.perf_counter()-t;"
        "print(json.dumps([r.returncode,w,resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024,r.stderr[-4000:]]))"
    )
    out = subprocess.run([sys.executable, "-c", helper, *cmd], env=env, capture_output=True, text=True, cwd=cwd)
    code, wall, rss, err = json.loads(out.stdout.strip().splitlines()[-1])
    if code != 0:
        raise SystemExit(f"command failed ({code}): {' '.join(cmd)}\n{err}")
    return wall, rss


CONSOLIDATED = """
event_log_storage:
  module: dagster._core.storage.event_log
  class: ConsolidatedSqliteEventLogStorage
  config:
    base_dir: {base}
"""


def _fresh_env(root: Path, consolidated: bool = False) -> dict:
    home = root / "dagster_home"
    home.mkdir(parents=True)
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    if consolidated:  # Dagster's one-file SQLite event log instead of a file per run plus an index
        with (home / "dagster.yaml").open("a") as config:
            config.write(CONSOLIDATED.format(base=home / "history"))
    env = {k: v for k, v in os.environ.items() if k not in ("WAREHOUSE_URL", "FLIGHTS_SOURCE")}
    env.update(DAGSTER_HOME=str(home), FLIGHTS_DATA_DIR=str(root / "data"), VIRTUAL_ENV=sys.prefix, **TELEMETRY_OFF)
    return env


def _materialize(partition_args: list[str]) -> list[str]:
    """The CLI a team's CI uses (`dg launch`, the code location from pyproject.toml's [tool.dg])."""
    return [str(BIN / "dg"), "launch", "--assets", "*flight_features", *partition_args]


def _floor(partition_args: list[str]) -> list[str]:
    """The same CLI over a trivial graph of the same shape: Dagster's own cost of such a run."""
    return [str(BIN / "dg"), "launch", "-f", str(REPO / "bench" / "dagster_event_floor.py"), "--assets", "*", *partition_args]


def main(skip_year: bool = False) -> dict:
    results: dict = {"machine": {"cores": os.cpu_count()}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if not skip_year:
            env = _fresh_env(tmp / "year")
            wall, rss = _timed(_materialize(["--partition-range", "2013-01-01...2013-12-31"]), env)
            from dagster import DagsterInstance

            runs = DagsterInstance.from_config(env["DAGSTER_HOME"]).get_runs()
            results["year_backfill"] = {"wall_s": round(wall, 1), "peak_rss_mib": round(rss), "runs": len(runs)}
            print(f"full-year backfill, one run ({len(runs)} run): {wall:.1f} s, peak RSS {rss:.0f} MiB", flush=True)

            plain_db = tmp / "plain.db"
            pwall, prss = _timed([sys.executable, str(REPO / "bench" / "plain_pandas.py"),
                                  "2013-01-01", "2013-12-31", str(plain_db)], env)
            results["plain_pandas"] = {"wall_s": round(pwall, 1), "peak_rss_mib": round(prss)}
            results["ratio_pipeline_to_plain"] = round(wall / pwall, 2)
            print(f"plain pandas script, same tables: {pwall:.1f} s, peak RSS {prss:.0f} MiB; "
                  f"ratio {wall / pwall:.2f}x", flush=True)

            # the floor: the same graph and per-day records with empty asset bodies, on the
            # repository's instance configuration and on Dagster's consolidated SQLite event log
            floor_env = _fresh_env(tmp / "floor")
            fwall, _ = _timed(_floor(["--partition-range", "2013-01-01...2013-12-31"]), floor_env)
            consolidated_env = _fresh_env(tmp / "floor_consolidated", consolidated=True)
            cwall, _ = _timed(_floor(["--partition-range", "2013-01-01...2013-12-31"]), consolidated_env)
            excess = wall - fwall - pwall
            results["dagster_event_floor_s"] = round(fwall, 1)
            results["dagster_event_floor_consolidated_sqlite_s"] = round(cwall, 1)
            results["year_excess_over_floor_plus_plain_s"] = round(excess, 1)
            print(f"Dagster bookkeeping alone (same graph and per-day records, empty assets): {fwall:.1f} s; "
                  f"with ConsolidatedSqliteEventLogStorage: {cwall:.1f} s", flush=True)
            print(f"full year: pipeline {wall:.1f} s = floor {fwall:.1f} s + plain script {pwall:.1f} s + excess "
                  f"{excess:.1f} s (target <= 10 s); plain script {pwall:.1f} s vs 44.0 s before (target <= 22 s)",
                  flush=True)

        # one day through the three stages via the CLI, and the same graph with empty assets
        # (the CLI floor), alternating so that both see the same machine state
        env, floor_env = _fresh_env(tmp / "days"), _fresh_env(tmp / "days_floor")
        _timed(_materialize(["--partition", "2013-04-01"]), env)  # first run: stores created
        _timed(_floor(["--partition", "2013-04-01"]), floor_env)
        walls, floors = [], []
        for day in ("2013-04-02", "2013-04-03", "2013-04-04"):
            wall, _ = _timed(_materialize(["--partition", day]), env)
            fwall, _ = _timed(_floor(["--partition", day]), floor_env)
            walls.append(wall)
            floors.append(fwall)
            print(f"one day via CLI ({day}): {wall:.1f} s; CLI floor (empty assets, same graph): {fwall:.1f} s; "
                  f"ratio {wall / fwall:.2f}x", flush=True)
        ratio = statistics.median(walls) / statistics.median(floors)
        results["one_day_cli_s"] = {"runs": [round(w, 1) for w in walls], "median": round(statistics.median(walls), 1)}
        results["one_day_cli_floor_s"] = {"runs": [round(w, 2) for w in floors], "median": round(statistics.median(floors), 2)}
        results["one_day_ratio_to_floor"] = round(ratio, 2)
        print(f"one day: median {statistics.median(walls):.1f} s vs floor {statistics.median(floors):.1f} s = "
              f"{ratio:.2f}x (target <= 2x)", flush=True)

    return write_results("data_foundation", results)


def write_results(name: str, results: dict) -> dict:
    """Print the figures and keep them in bench/results/NAME_<time>.json."""
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    path = out / f"{name}_{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    print(f"written to {path}")
    return results


if __name__ == "__main__":
    main(skip_year="--skip-year" in sys.argv)
