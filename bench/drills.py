"""`make drills` (`python bench/drills.py`): each feed incident of the library injected on its own into a
stretch of 2013, on fresh stores each, and a clean stretch (nothing injected, the late-June storms
in it), played through the pipeline's own sensors and jobs; then the table of what noticed each
incident, how fast, what the pipeline did and what it should have done.

The stores of the history (30 days of real 2013 and the first model) are built once into
FLIGHTS_DATA_DIR/drills/base (data/drills/base) and copied into …/drills/work before each drill: every drill starts from the
same instance, warehouse, registry and monitoring workspace, and none sees another's days. Each
drill runs in its own process (bench/drill_play.py).

Results: bench/results/drills.json (every day of every drill), drills.md (the table) and
drills.png (a timeline per drill). The retrain sensors act without cooldown here
(FLIGHTS_RETRAIN_COOLDOWN_DAYS=0), so that any threshold a broken day crosses would start a
retrain; the retrains fit without tuning (FLIGHTS_TUNING_TRIALS=1) to keep the drills short.

    python bench/drills.py [--only NAME ...] [--rebuild-base] [--results DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from drill_play import SERVED_INCIDENT  # noqa: E402

from pipelines.commands.drills.incidents import FEED_INCIDENTS, WORLD_SHIFTS  # noqa: E402
from resources.settings import REPO_ROOT, configure_process, settings, subprocess_env  # noqa: E402

HISTORY = ("2013-05-23", "2013-06-21")  # the base: 30 real days and the first model trained on them
FEED_STRETCH = ("2013-06-22", "2013-06-25")  # each feed incident starts on the stretch's second day
INCIDENT_FIRST = "2013-06-23"
CLEAN_STRETCH = ("2013-06-22", "2013-06-28")  # nothing injected: the summer storms begin on 06-24
CLEAN = "clean_summer_storms"
SHIFT = next(s for s in WORLD_SHIFTS if s.name == "summer_storms")
RESULTS = REPO_ROOT / "bench" / "results"
DRILL_ENV = {"FLIGHTS_SOURCE": "landing", "FLIGHTS_RETRAIN_COOLDOWN_DAYS": "0", "FLIGHTS_TUNING_TRIALS": "1",
             "FLIGHTS_ALERT_RETRIES": "1"}

EXPECTED_FEED = "blocked or flagged; no retrain, no model trained on it"
EXPECTED_SERVED = "alert; the stale requests left out of the day's served drift; no retrain"
EXPECTED_WORLD = "no flag; retrain when a drift or performance threshold crosses"


# the drills' stores are files in their folder, copied whole from the base: no setting may point them elsewhere
ELSEWHERE = ("WAREHOUSE_URL", "MLFLOW_TRACKING_URI", "MLFLOW_ARTIFACT_ROOT", "FLIGHTS_POSTGRES_URL", "FLIGHTS_EVIDENTLY_URL",
             "FLIGHTS_LANDING_DIR", "FLIGHTS_EXECUTOR", "FLIGHTS_ALERT_WEBHOOK_URL", "FLIGHTS_SMTP_HOST")


def stores_env(folder: Path) -> dict[str, str]:
    env = subprocess_env({**DRILL_ENV, "FLIGHTS_DATA_DIR": str(folder), "DAGSTER_HOME": str(folder / "dagster_home")})
    return {k: v for k, v in env.items() if k not in ELSEWHERE}


def fresh(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "dagster_home").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "dagster_home" / "dagster.yaml", folder / "dagster_home" / "dagster.yaml")


def play(args: list[str], folder: Path, log: Path) -> None:
    with log.open("w") as out:
        done = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "drill_play.py"), *args], env=stores_env(folder),
                              stdout=out, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
    if done.returncode:
        raise SystemExit(f"drill step {' '.join(args[:2])} failed (exit {done.returncode}): see {log}")


def build_base(root: Path, rebuild: bool) -> dict:
    base, ready = root / "base", root / "base" / "ready.json"
    if ready.exists() and not rebuild:
        return json.loads(ready.read_text())
    # built where the drills run: the stores hold absolute paths (MLflow's artifact locations)
    work = root / "work"
    fresh(work)
    play(["base", *HISTORY, str(work / "base.json")], work, root / "base.log")
    shutil.rmtree(base, ignore_errors=True)
    shutil.copytree(work, base)
    (base / "base.json").rename(ready)
    return json.loads(ready.read_text())


def run_drill(root: Path, name: str) -> dict:
    first, last = CLEAN_STRETCH if name == CLEAN else FEED_STRETCH
    work = root / "work"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(root / "base", work)
    out = work / "drill.json"
    started = time.perf_counter()
    play(["drill", name, first, last, INCIDENT_FIRST if name != CLEAN else first, str(out)], work, root / f"{name}.log")
    return {**json.loads(out.read_text()), "seconds": round(time.perf_counter() - started, 1)}


def days_after(first: str, day: str) -> int:
    return (date.fromisoformat(day) - date.fromisoformat(first)).days


def summarize(result: dict) -> dict:
    """The table's row of a drill."""
    name, days = result["drill"], result["days"]
    feed, served = name in FEED_INCIDENTS, name == SERVED_INCIDENT
    broken = [d["day"] for d in days if d["injected"]]
    noticed = [d for d in days if d["injected"] and (d["flags"] or d["ingest"] == "failed" or d.get("served_stale"))]
    checks = sorted({f["check"] for d in noticed for f in d["flags"]}
                    | {c.split(".", 1)[1] for d in noticed for c in d["failed_checks"] if d["ingest"] == "failed"
                       or c.endswith("served_requests_current")})
    retrains = [r for d in days for r in d["retrains"]]  # started by the sensors
    on_broken = [r for d in days if d["injected"] for r in d["retrains"]]
    periodic = result["periodic_retrain"]
    # broken data a model could learn: a feed incident's days (a stale caller's is served traffic, which no training reads)
    trained_on_broken = [r["version"] for r in [*retrains, periodic]
                         if feed and r["version"] and set(r["trained_on"]) & set(broken)]
    false_alarms = [d["day"] for d in days if not d["injected"]
                    and (d["flags"] or d["ingest"] == "failed" or d.get("served_stale"))]
    alerts = [a for d in days for a in d["alerts"]]
    if served:
        taken = ("alerted; the stale requests left out of the day's served drift" if noticed else "nothing noticed") + (
            f"; {len(on_broken)} retrain(s) on the day" if on_broken else "; no retrain for it")
    elif not feed:
        taken = f"{len(retrains)} retrain(s): " + ", ".join(f"{r['day_asked']} by {r['trigger']}: v{r['version']} {r['decision']}"
                                                          for r in retrains) if retrains else "no retrain"
    elif any(d["ingest"] == "failed" for d in noticed):
        taken = "blocked: nothing of the day written, the day left out of training"
    elif noticed:
        taken = "flagged: written, left out of training, no retrain for it"
    else:
        taken = "nothing noticed"
    return {
        "drill": name,
        "what": FEED_INCIDENTS[name].what if feed else "served requests with a scheduled departure a week old" if served
        else f"nothing injected; {SHIFT.what} ({SHIFT.first_day} on)",
        "injected": f"{broken[0]} … {broken[-1]}" if len(broken) > 1 else (broken[0] if broken else "none"),
        "days_to_detection": days_after(broken[0], noticed[0]["day"]) if noticed else None,
        "checks": ", ".join(checks) or ("—" if not feed else "none"),
        "action_taken": taken,
        "action_expected": EXPECTED_FEED if feed else EXPECTED_SERVED if served else EXPECTED_WORLD,
        "as_expected": periodic["success"] and not trained_on_broken and (
            bool(noticed) and not on_broken and not false_alarms if feed or served else not false_alarms),
        "retrains_started": len(retrains),
        "periodic_retrain": (f"v{periodic['version']} {periodic['decision']}, {len(periodic['trained_on'])} days, "
                             f"{periodic['days_left_out']} left out" if periodic["success"] else "failed"),
        "retrains_on_broken_days": len(on_broken),
        "versions_trained_on_broken_data": len(trained_on_broken),
        "false_alarms": len(false_alarms),
        "alerts_sent": len(alerts),
        "alert_titles": alerts,
        "seconds": result["seconds"],
    }


COLUMNS = [("drill", "incident"), ("injected", "injected days"), ("days_to_detection", "days to detection"),
           ("checks", "check"), ("action_taken", "action taken"), ("action_expected", "action expected"),
           ("retrains_started", "retrains started by the sensors"), ("periodic_retrain", "the periodic retrain at the end"),
           ("versions_trained_on_broken_data", "versions trained on broken data"),
           ("false_alarms", "false alarms"), ("alerts_sent", "alerts sent")]


def table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(h for _, h in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        lines.append("| " + " | ".join("—" if r[k] is None else str(r[k]) for k, _ in COLUMNS) + " |")
    return "\n".join(lines)


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 0.55 * len(results) + 1.8))
    for y, result in enumerate(reversed(results)):
        first = result["first"]
        for d in result["days"]:
            x = days_after(first, d["day"])
            if d["injected"]:
                ax.barh(y, 1, left=x, color="#f4b6b6", edgecolor="none")
            if d["ingest"] == "failed":
                ax.plot(x + 0.5, y, "s", color="#b2182b", ms=8)
            elif d["flags"] or d.get("served_stale"):
                ax.plot(x + 0.5, y, "D", color="#ef8a62", ms=7)
            for _ in d["retrains"]:
                ax.plot(x + 0.5, y + 0.28, "^", color="#2166ac", ms=7)
            if d["alerts"]:
                ax.annotate(f"{len(d['alerts'])}", (x + 0.85, y - 0.35), fontsize=7, color="#555")
        ax.plot(days_after(first, result["last"]) + 1.1, y, ">", color="#4d4d4d", ms=7)
    ax.set_yticks(range(len(results)), [r["drill"] for r in reversed(results)])
    ax.set_xlabel(f"days since {FEED_STRETCH[0]} (incidents from {INCIDENT_FIRST}, shaded)")
    handles = [plt.Line2D([], [], marker=m, color=c, ls="", label=lab) for m, c, lab in (
        ("s", "#b2182b", "day blocked"), ("D", "#ef8a62", "day flagged or served stale"),
        ("^", "#2166ac", "retrain started by a sensor"), (">", "#4d4d4d", "the periodic retrain at the end"))]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=4, fontsize=8)
    ax.set_title("Incident drills: what the pipeline did on each day (numbers: alerts sent)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    configure_process()
    parser = argparse.ArgumentParser(prog="bench/drills.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", help=f"drills to play (default all): {', '.join([*FEED_INCIDENTS, SERVED_INCIDENT, CLEAN])}")
    parser.add_argument("--rebuild-base", action="store_true", help="build the history's stores again")
    parser.add_argument("--results", type=Path, default=RESULTS, help=f"where the table, JSON and PNG go (default {RESULTS})")
    parser.add_argument("--summarize", type=Path, help="only the table and PNG again, from the drills.json of a run")
    args = parser.parse_args(argv)
    root, results_dir = settings().data_dir / "drills", args.results
    if args.summarize:
        run = json.loads(args.summarize.read_text())
        return report(run["drills"], [summarize(r) for r in run["drills"]], run["seconds"], results_dir)
    names = args.only or [*FEED_INCIDENTS, SERVED_INCIDENT, CLEAN]
    started = time.perf_counter()
    root.mkdir(parents=True, exist_ok=True)
    results_dir.mkdir(parents=True, exist_ok=True)
    base = build_base(root, args.rebuild_base)
    print(f"history {HISTORY[0]} … {HISTORY[1]} and v{base['first_model']['version']}: {time.perf_counter() - started:.0f} s",
          flush=True)
    results, rows = [], []
    for name in names:
        result = run_drill(root, name)
        row = summarize(result)
        results.append(result)
        rows.append(row)
        print(f"{name}: detected after {row['days_to_detection']} day(s) by {row['checks']}; {row['action_taken']}; "
              f"{row['retrains_started']} retrain(s) by the sensors, the periodic one {row['periodic_retrain']}; "
              f"{row['versions_trained_on_broken_data']} version(s) trained on broken data, "
              f"{row['false_alarms']} false alarm(s), {row['alerts_sent']} alert(s) ({row['seconds']:.0f} s)", flush=True)
    return report(results, rows, time.perf_counter() - started, results_dir)


def report(results: list[dict], rows: list[dict], total: float, results_dir: Path) -> int:
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "drills.json").write_text(json.dumps({"seconds": round(total, 1), "rows": rows, "drills": results},
                                                    indent=1, default=str))
    (results_dir / "drills.md").write_text(table(rows) + "\n")
    plot(results, results_dir / "drills.png")
    print("\n" + table(rows))
    failed = [r["drill"] for r in rows if not r["as_expected"]]
    print(f"\n{len(rows) - len(failed)} of {len(rows)} drills as expected" + (f"; not: {', '.join(failed)}" if failed else "")
          + f"; {total / 60:.1f} min. Results: {results_dir / 'drills.md'}, drills.json, drills.png")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
