"""What keeping every version of a day costs: the code before data versions against this one, in
the same benchmark run, on the same machine.

1. The full-year backfill of the data half (ingestion, validation, features; 365 days as one
   `dagster asset materialize` run, process start included) on a fresh instance and warehouse,
   for each source tree, in the order baseline, current, current, baseline (so that a drift of
   the machine weighs on both alike). Target: current <= 1.1 x baseline.
2. A 60-day window read of `flight_features` (2013-10-03 … 12-01, as a retrain reads its recent
   days) from each tree's year-long warehouse: median of 9 reads, alternating the trees; for the
   current tree also the read of those days by their recorded version ids (what `candidate_model`
   and `pipelines.commands.reproduce` do). Target: <= 1.2 x baseline.
3. One day written again through the CLI, both trees alternating on their year-long warehouses:
   the baseline deletes the day's old rows, the current tree moves them to the history tables.

    python bench/bench_data_versions.py [--baseline REV]   # default: 4bb5375, the commit before
    python bench/bench_data_versions.py --baseline 91169f1   # the house by role (issue 24) against its parent
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.bench_data_foundation import BIN, _fresh_env, _materialize, _timed, write_results  # noqa: E402

BASELINE = "4bb5375"
WINDOW = ("2013-10-03", 60)

READ = r"""
import json, statistics, sys, time
from datetime import date, timedelta
sys.path.insert(0, ".")
from resources.schemas import flight_features
from resources.warehouse import Warehouse
url, start, n, rounds, by_id = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"
days = [(date.fromisoformat(start) + timedelta(days=i)).isoformat() for i in range(n)]
wh = Warehouse(url=url)
wh.read(flight_features, days[:1])  # connection and schema check out of the timing
ids = {d: v for d, (v, _) in wh.current_versions("flight_features", days).items()} if by_id else None
walls = []
for _ in range(rounds):
    t = time.perf_counter()
    frame = wh.read_versions(flight_features, ids) if by_id else wh.read(flight_features, days)
    walls.append(time.perf_counter() - t)
print(json.dumps({"median_s": statistics.median(walls), "runs_s": walls, "rows": len(frame), "columns": frame.shape[1]}))
"""


def _tree(rev: str, into: Path) -> Path:
    """The source of `rev` (a plain export: no worktree left behind)."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", rev], cwd=REPO, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def _cli_for(baseline_tree: Path):
    """The CLI both trees run: `dg launch` when the baseline knows it ([tool.dg] in its pyproject.toml),
    else the older `dagster asset materialize`, which every tree still answers (one CLI for both sides:
    the comparison is of the code, not of the CLIs' start-up)."""
    if "[tool.dg]" in (baseline_tree / "pyproject.toml").read_text():
        return _materialize
    return lambda partition_args: [str(BIN / "dagster"), "asset", "materialize", "-m", "pipelines.definitions",
                                   "--select", "*flight_features", *partition_args]


def _backfill(tree: Path, root: Path, cli) -> tuple[float, dict]:
    env = _fresh_env(root)
    env["WAREHOUSE_URL"] = f"sqlite:///{root / 'data' / 'warehouse.db'}"
    wall, _ = _timed_in(tree, cli(["--partition-range", "2013-01-01...2013-12-31"]), env)
    return wall, env


def _timed_in(tree: Path, cmd: list[str], env: dict) -> tuple[float, float]:
    """`bench_data_foundation._timed`, with the command run from `tree` (its code, its definitions)."""
    return _timed(cmd, {**env, "PYTHONPATH": str(tree)}, cwd=tree)


def _read(tree: Path, url: str, by_id: bool) -> dict:
    out = subprocess.run([sys.executable, "-c", READ, url, WINDOW[0], str(WINDOW[1]), "9", "1" if by_id else "0"],
                         cwd=tree, capture_output=True, text=True, env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"})
    if out.returncode:
        raise SystemExit(f"read failed in {tree}:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(baseline: str = BASELINE) -> dict:
    results: dict = {"baseline": baseline,
                     "current": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                               text=True).stdout.strip()}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        trees = {"baseline": _tree(baseline, tmp / "src_baseline"), "current": REPO}
        cli = _cli_for(trees["baseline"])
        results["cli"] = " ".join(Path(arg).name for arg in cli([])[:3])
        walls: dict[str, list[float]] = {"baseline": [], "current": []}
        urls = {}
        for i, side in enumerate(("baseline", "current", "current", "baseline")):
            wall, env = _backfill(trees[side], tmp / f"{side}{i}", cli)
            walls[side].append(wall)
            urls.setdefault(side, env["WAREHOUSE_URL"])
            size = (tmp / f"{side}{i}" / "data" / "warehouse.db").stat().st_size / 2**20
            print(f"full-year backfill, {side}: {wall:.1f} s (warehouse {size:.0f} MiB)", flush=True)
        base, cur = statistics.mean(walls["baseline"]), statistics.mean(walls["current"])
        results["year_backfill_s"] = {**{k: [round(w, 1) for w in v] for k, v in walls.items()},
                                      "ratio": round(cur / base, 3)}
        print(f"full-year backfill: current {cur:.1f} s / baseline {base:.1f} s = {cur / base:.3f}x (target <= 1.1x)",
              flush=True)

        reads = {"baseline": [], "current": [], "current_by_version_id": []}
        for _ in range(3):  # alternating, each a median of 9 reads in a fresh process
            reads["baseline"].append(_read(trees["baseline"], urls["baseline"], False))
            reads["current"].append(_read(REPO, urls["current"], False))
            reads["current_by_version_id"].append(_read(REPO, urls["current"], True))
        medians = {k: statistics.median(r["median_s"] for r in v) for k, v in reads.items()}
        rows = {k: v[0]["rows"] for k, v in reads.items()}
        results["window_read_60_days_s"] = {k: round(v, 4) for k, v in medians.items()}
        results["window_read_rows"] = rows
        results["window_read_ratio"] = round(medians["current"] / medians["baseline"], 3)
        results["window_read_by_version_id_ratio"] = round(medians["current_by_version_id"] / medians["baseline"], 3)
        print(f"60-day window read ({rows['baseline']} rows): baseline {medians['baseline'] * 1000:.0f} ms, current "
              f"{medians['current'] * 1000:.0f} ms ({results['window_read_ratio']:.3f}x), by version id "
              f"{medians['current_by_version_id'] * 1000:.0f} ms ({results['window_read_by_version_id_ratio']:.3f}x); "
              "target <= 1.2x", flush=True)

        # one day written again through the CLI: the baseline deletes the old rows, the current
        # tree moves them to the history tables
        again: dict[str, list[float]] = {"baseline": [], "current": []}
        for day in ("2013-07-01", "2013-07-02", "2013-07-03"):
            for side in ("baseline", "current"):
                env = _fresh_env(tmp / f"again_{side}_{day}")
                env["WAREHOUSE_URL"] = urls[side]
                again[side].append(_timed_in(trees[side], cli(["--partition", day]), env)[0])
        results["one_day_written_again_s"] = {k: [round(w, 1) for w in v] for k, v in again.items()}
        print(f"one day written again via the CLI: baseline median {statistics.median(again['baseline']):.1f} s, "
              f"current (old version kept) {statistics.median(again['current']):.1f} s", flush=True)

    return write_results("data_versions", results)


if __name__ == "__main__":
    args = sys.argv[1:]
    main(args[args.index("--baseline") + 1] if "--baseline" in args else BASELINE)
