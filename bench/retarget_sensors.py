"""The sensors' thresholds re-chosen for today's model on the first half of 2013 and judged on the
second (issue 28), with the closed-loop replay's own functions (bench/closed_loop_replay.py).

1. Chosen on H1 (2013-03-02 … 06-30; the first model trains on January and February): every rule
   set of the grid replays H1 under the `sensors` policy. The chosen one has the highest mean
   daily ROC AUC among those that retrain at most one eighth as often as the daily policy (one a
   day: 121 days -> at most 15 retrains); ties go to fewer retrains.
2. Judged on H2 (07-01 … 12-31): the chosen rules, the current defaults and `never` replay the
   whole year (what H1 deployed carries into H2); the figures are those of the H2 days only,
   per quarter, against the daily policy's.

The daily policy's figures are this round's run (docs/benchmarks.md, issue 15:
closed_loop_replay_20261123-185319, Q3 0.7083, Q4 0.6932, a retrain every day), whose training
and gate code has not changed since; `--with-daily` runs it again (about 70 minutes).

    python bench/retarget_sensors.py [--workers 2] [--with-daily]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one thread per replay process, two processes on the 2 cores

import closed_loop_replay as clr  # noqa: E402

H1, H2 = ("2013-03-02", "2013-06-30"), ("2013-07-01", "2013-12-31")
GRID = {"drift_share": (0.3, 0.45), "roc_auc_drop": (0.04, 0.05, 0.07), "cooldown_days": (7, 14)}
# this round's daily policy (docs/benchmarks.md): per-quarter mean daily ROC AUC, a retrain every day
DAILY = {"source": "closed_loop_replay_20261123-185319 (docs/benchmarks.md)", "Q3": 0.7083, "Q4": 0.6932}
MAX_RETRAIN_SHARE = 1 / 8

_STATE: dict = {}


def _load(workdir: Path) -> None:
    from resources.schemas import flight_features
    from resources.warehouse import Warehouse

    url, _ = clr.build_year(workdir)
    keys = clr.partition_days()
    features = Warehouse(url=url).read(flight_features, keys)
    _STATE["by_day"] = {d: part.reset_index(drop=True) for d, part in features.groupby("partition_date")}
    _STATE["keys"] = keys


def _first():
    if "first" not in _STATE:
        keys = _STATE["keys"]
        _STATE["first"] = clr.train(_STATE["by_day"], keys[keys.index(H1[0]) - 1], None, "all")[0]
    return _STATE["first"]


def _replay(job: tuple[str, dict, tuple[str, str]]) -> dict:
    policy, rules, (first, last) = job
    days = [d for d in _STATE["keys"] if first <= d <= last]
    result = clr.replay(policy, _STATE["by_day"], days, _first(), lambda m: None, "all", clr.Rules(**rules))
    return {"policy": policy, "rules": rules, **{k: v for k, v in result.items() if k != "policy"}}


def judged_on(result: dict, first: str, last: str) -> dict:
    days = [d for d in result["daily"] if first <= d["day"] <= last]
    aucs = [d["roc_auc"] for d in days if d["roc_auc"] == d["roc_auc"]]
    return {"days": len(days), "mean_roc_auc": round(sum(aucs) / len(aucs), 4),
            "retrains": sum(1 for d in days if d.get("retrain"))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default=str(clr.REPO / "data" / "replay"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--with-daily", action="store_true")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    _load(Path(args.workdir))
    _first()  # trained once, before the workers fork
    grid = [dict(zip(GRID, values)) for values in itertools.product(*GRID.values())]
    h1_days = len([d for d in _STATE["keys"] if H1[0] <= d <= H1[1]])
    budget = int(h1_days * MAX_RETRAIN_SHARE)
    print(f"H1 {H1[0]} … {H1[1]} ({h1_days} days): {len(grid)} rule sets; at most {budget} retrains "
          f"(1/8 of the daily policy's {h1_days})", flush=True)
    with ProcessPoolExecutor(args.workers) as pool:
        h1 = list(pool.map(_replay, [("sensors", rules, H1) for rules in grid]))
        for r in sorted(h1, key=lambda r: -r["mean_roc_auc"]):
            print(f"  {r['rules']}: mean {r['mean_roc_auc']:.4f}, {r['retrains']} retrains ({r['promotions']} deployed), "
                  f"{r['compute_s']:.0f} s", flush=True)
        within = [r for r in h1 if r["retrains"] <= budget] or h1
        chosen = max(within, key=lambda r: (r["mean_roc_auc"], -r["retrains"]))["rules"]
        default = {"drift_share": clr.settings.drift_share, "roc_auc_drop": clr.settings.roc_auc_drop,
                   "cooldown_days": clr.settings.retrain_cooldown_days}
        print(f"chosen on H1: {chosen} (the defaults: {default}); the year replayed for H2 ...", flush=True)
        year = (H1[0], H2[1])
        jobs = [("sensors", chosen, year), ("never", default, year)] + ([("sensors", default, year)] if chosen != default else [])
        if args.with_daily:
            jobs.append(("daily", default, year))
        full = list(pool.map(_replay, jobs))
    rows = []
    for r in full:
        h2 = judged_on(r, *H2)
        q = {k: v for k, v in r["quarters"].items() if k in ("Q3", "Q4")}
        rows.append({"policy": r["policy"], "rules": r["rules"], "h2": h2, "quarters": q, "compute_s": r["compute_s"],
                     "year_retrains": r["retrains"]})
    daily_h2 = next((row["h2"] for row in rows if row["policy"] == "daily"), None)
    daily_mean = daily_h2["mean_roc_auc"] if daily_h2 else round((DAILY["Q3"] * 92 + DAILY["Q4"] * 92) / 184, 4)
    daily_retrains = daily_h2["retrains"] if daily_h2 else 184
    never = next(row for row in rows if row["policy"] == "never")
    print(f"\nH2 {H2[0]} … {H2[1]}: daily policy mean {daily_mean:.4f} with {daily_retrains} retrains"
          + ("" if daily_h2 else f" ({DAILY['source']})"))
    for row in rows:
        if row["policy"] != "sensors":
            continue
        gap = row["h2"]["mean_roc_auc"] - daily_mean
        below = [q for q in row["quarters"] if row["quarters"][q]["mean_roc_auc"] < never["quarters"][q]["mean_roc_auc"]]
        row["targets"] = {"within_0.002_of_daily": gap >= -0.002, "at_most_1/8_of_daily_retrains":
                          row["h2"]["retrains"] <= daily_retrains * MAX_RETRAIN_SHARE, "quarters_below_never": below}
        print(f"  sensors {row['rules']}: mean {row['h2']['mean_roc_auc']:.4f} ({gap:+.4f} vs daily; target >= -0.002), "
              f"{row['h2']['retrains']} retrains (target <= {daily_retrains * MAX_RETRAIN_SHARE:.0f}), quarters below never: "
              f"{below or 'none'}; " + ", ".join(f"{q} {v['mean_roc_auc']:.4f}/{v['retrains']}" for q, v in row["quarters"].items()))
    print(f"  never: mean {never['h2']['mean_roc_auc']:.4f}; " + ", ".join(
        f"{q} {v['mean_roc_auc']:.4f}" for q, v in never["quarters"].items()))
    out = clr.REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"retarget_sensors_{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"h1": [{k: v for k, v in r.items() if k != "daily"} for r in h1], "chosen": chosen,
                                "h2": rows, "daily": {"mean_roc_auc": daily_mean, "retrains": daily_retrains,
                                                      "source": "run" if daily_h2 else DAILY["source"]},
                                "seconds": round(time.perf_counter() - started, 1)}, indent=1))
    print(f"\n{time.perf_counter() - started:.0f} s; {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
