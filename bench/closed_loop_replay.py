"""The closed-loop replay of 2013: how the deployed model fares, day by day, under four
retraining policies, for each training window asked for.

- never:   the first model (trained on the days ending REPLAY_START - 1) stays deployed;
- weekly:  a retrain every FLIGHTS_RETRAIN_EVERY_DAYS days (the periodic schedule);
- sensors: a retrain when the day's drift or performance verdict crosses its threshold, with
           the cooldown (what drift_sensor / performance_sensor do);
- daily:   a retrain every day (the limit of freshness).

Training windows (`--windows`): `all` (every day since 2013-01-01: the window the forward folds
of bench/bench_model.py found best, and the one the retrain's own search chooses on most
days) and `60` (the trailing 60 days, this pipeline's window until now). Each retrain fits
the window's train and validation days with the default hyperparameters (what candidate_model
registers with that one window option), without tuning or calibration (the search and the
calibration are measured in bench/bench_model.py).

Every retrain goes through the same gate as `model_evaluation` (a candidate that does not beat
the champion on the same test days, or is worse on a guarded segment, is not deployed). Each day is scored by the model deployed
*before* the day; its ROC AUC on the day's real outcomes is the policy's daily figure.

What runs: the features of the year come from the warehouse that the real pipeline builds (one
Dagster backfill, shared by the three policies and timed separately); the replay then applies,
in one process, the pipeline's own functions: training set, fit, threshold, metrics, gate
(assets/training/logic.py, assets/evaluation/logic.py), the per-column drift verdicts of
Evidently's stat tests (assets/monitoring/reports.py column_drift, the verdicts drift_report records) and the trailing ROC AUC of
performance_report, and the sensors' rules (pipelines.orchestration.policy). It skips what does not change a
decision: Dagster run bookkeeping, MLflow logging and HTML rendering per day.

    make replay          # or: python bench/closed_loop_replay.py [--start 2013-03-02] [--end 2013-12-31]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
BIN = Path(sys.executable).parent

from assets.common import partition_days  # noqa: E402
from assets.evaluation.logic import GatePolicy, baseline_scores, decide, metrics, segment_comparison  # noqa: E402
from assets.monitoring.logic import DRIFT_COLUMNS_CATEGORICAL, DRIFT_COLUMNS_NUMERIC, reference_and_thresholds  # noqa: E402
from assets.monitoring.reports import column_drift  # noqa: E402
from assets.training.logic import (  # noqa: E402
    LABEL,
    ModelParams,
    build_training_set,
    fit,
    split_days,
    window_days,
)
from pipelines.orchestration.policy import in_cooldown, retrain_due  # noqa: E402
from resources.records import TrainingWindow  # noqa: E402
from resources.settings import configure_process  # noqa: E402
from resources.settings import settings as current_settings  # noqa: E402
from served_model.features import model_input  # noqa: E402

configure_process()
settings = current_settings()

POLICIES = ("never", "weekly", "sensors", "daily")
# training window -> (days the window reaches back, the train days fitted: 0 = all of them)
WINDOWS = {"all": (365, 0), "60": (60, 0)}


def build_year(workdir: Path) -> tuple[str, float]:
    """The year's flight_features through the real pipeline (one backfill run), unless present."""
    from sqlalchemy import create_engine, inspect, text

    from resources.schemas import flight_features

    url = f"sqlite:///{workdir / 'warehouse.db'}"
    try:
        with create_engine(url).connect() as conn:
            days = conn.execute(text("SELECT COUNT(DISTINCT partition_date) FROM flight_features")).scalar()
            stored = {c["name"] for c in inspect(conn).get_columns("flight_features")}
    except Exception:
        days, stored = 0, set()
    if days == 365 and {c.name for c in flight_features.columns} <= stored:
        return url, 0.0
    if stored:  # built by an earlier version of the features: start again
        for path in (workdir / "warehouse.db", workdir / "dagster_home"):
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    home = workdir / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text((REPO / "dagster_home" / "dagster.yaml").read_text())
    env = {**os.environ, "DAGSTER_HOME": str(home), "FLIGHTS_DATA_DIR": str(workdir), "WAREHOUSE_URL": url, "VIRTUAL_ENV": sys.prefix}
    print(f"building the year's features into {url} (one Dagster backfill run) ...", flush=True)
    started = time.perf_counter()
    subprocess.run([str(BIN / "dg"), "launch", "--assets", "*flight_features", "--partition-range", "2013-01-01...2013-12-31",
                    "--config-json", '{"loggers": {"console": {"config": {"log_level": "WARNING"}}}}'],
                   env=env, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return url, time.perf_counter() - started


class Deployed:
    """A trained model as the registry would hold it: the model, its threshold, its window, its
    test ROC AUC at evaluation, and its drift reference (fixed-seed sample, scored)."""

    def __init__(self, model, threshold, days, eval_auc, frame):
        self.model, self.threshold, self.days, self.eval_auc = model, threshold, days, eval_auc
        self._frame, self._reference = frame, None

    def reference(self) -> tuple[pd.DataFrame, object]:
        """The drift reference and column thresholds, as drift_report builds them (on first use)."""
        if self._reference is None:
            scored = self._frame.assign(probability_late=self.predict(self._frame))
            ref, calibrated = reference_and_thresholds(scored, settings.drift_reference_rows, settings.column_drift_quantile)
            self._reference = (ref, settings.column_drift_threshold or calibrated)
        return self._reference

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        return self.model.predict_proba(model_input(rows))[:, 1]


def train(by_day: dict[str, pd.DataFrame], as_of: str, champion: Deployed | None, window: str) -> tuple[Deployed, dict]:
    """retrain_job's decisions: training set, fit, threshold, the gate against the champion
    (segments included)."""
    reach, train_days = WINDOWS[window]
    days = [d for d in window_days(as_of, reach) if d in by_day]
    frame = pd.concat([by_day[d] for d in days], ignore_index=True)
    ts = build_training_set(frame, TrainingWindow(split_days(days)), min_rows=2000)
    # the model candidate_model registers with this single window option and no tuning: fitted on the
    # train days plus the validation days (its refit); the threshold is chosen on the validation days
    # from a fit without them (out of sample), a fit the replay skips: no figure here depends on it
    model, threshold = fit(ts, ModelParams(), train_days, with_validation=True), 0.5
    test, tr = ts.split("test"), ts.split("train")
    y = test[LABEL].to_numpy()
    p_candidate = model.predict_proba(model_input(test))[:, 1]
    cand = metrics(y, p_candidate, threshold)
    gate = GatePolicy()
    champ, segments = None, None
    if champion is not None:
        p_champion = champion.predict(test)
        champ = metrics(y, p_champion, champion.threshold)
        segments = segment_comparison(test, p_candidate, p_champion, gate.segment_min_rows)
    base = metrics(y, baseline_scores(tr, test), threshold)
    decision = decide(cand, champ, base, gate, segments)
    # the drift reference is drawn from the newest 60 days of the window (a year-long frame is not kept per model)
    return Deployed(model, threshold, days, cand.roc_auc, frame[frame["partition_date"].isin(days[-60:])]), decision


def day_auc(y, p) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")


@dataclass(frozen=True)
class Rules:
    """The thresholds the sensors and the periodic retrain apply (default: the settings')."""

    drift_share: float = settings.drift_share
    roc_auc_drop: float = settings.roc_auc_drop
    cooldown_days: int = settings.retrain_cooldown_days
    window_days: int = settings.performance_window_days
    every_days: int = settings.retrain_every_days


def replay(policy: str, by_day: dict[str, pd.DataFrame], days: list[str], first: Deployed, log, window: str,
           rules: Rules = Rules()) -> dict:
    champion, last_retrain = first, first.days[-1]
    scored: dict[str, pd.DataFrame] = {}  # day -> labelled rows with the deployed model's probability
    daily, retrains, promotions, triggers, rejections = [], 0, 0, [], []
    started = time.perf_counter()
    for i, day in enumerate(days):
        day_started = time.perf_counter()
        rows = by_day[day]
        p_all = champion.predict(rows)
        has_label = rows[LABEL].notna().to_numpy()
        labelled, p = rows[has_label], p_all[has_label]
        auc = day_auc(labelled[LABEL].astype(int).to_numpy(), p)
        daily.append({"day": day, "roc_auc": auc})
        reason = None
        if policy == "daily":
            reason = "daily"
        elif policy == "weekly" and retrain_due(day, last_retrain, rules.every_days):
            reason = "periodic"
        elif policy == "sensors":
            scored[day] = labelled.assign(probability_late=p, model=id(champion))
            current = rows.assign(probability_late=p_all)
            reference, thresholds = champion.reference()
            cols = column_drift(reference, current, DRIFT_COLUMNS_NUMERIC,
                                DRIFT_COLUMNS_CATEGORICAL, thresholds)
            share = sum(c["drifted"] for c in cols) / len(cols)
            trailing = [scored[d] for d in days[max(0, i - rules.window_days + 1): i + 1]
                        if d in scored and scored[d]["model"].iloc[0] == id(champion)]
            pooled = pd.concat(trailing)
            drop = champion.eval_auc - day_auc(pooled[LABEL].astype(int).to_numpy(), pooled["probability_late"].to_numpy())
            daily[-1].update(drift_share=share, roc_auc_drop=drop)
            crossed = ("drift" if share >= rules.drift_share else None) or (
                "performance" if drop >= rules.roc_auc_drop else None)
            if crossed and not in_cooldown(day, last_retrain, rules.cooldown_days):
                reason = crossed
        if reason:
            candidate, decision = train(by_day, day, champion, window)
            retrains += 1
            last_retrain = day
            triggers.append(reason)
            daily[-1]["retrain"] = reason
            if decision.promote:
                champion, promotions = candidate, promotions + 1
            elif any(r.startswith("segment ") for r in decision.reasons):
                rejections.append("segment")
        daily[-1]["compute_s"] = time.perf_counter() - day_started
        if (i + 1) % 30 == 0 or i + 1 == len(days):
            recent = [d["roc_auc"] for d in daily[-30:]]
            log(f"  {window:>3s} {policy:8s} {day}  day {i + 1:3d}/{len(days)}  retrains {retrains:3d}  "
                f"mean ROC AUC (last 30 days) {np.nanmean(recent):.3f}  {time.perf_counter() - started:6.1f} s")
    aucs = np.array([d["roc_auc"] for d in daily])
    worst = int(np.nanargmin(aucs))
    return {
        "window": window, "policy": policy, "days": len(days), "mean_roc_auc": round(float(np.nanmean(aucs)), 4),
        "worst_roc_auc": round(float(aucs[worst]), 4), "worst_day": daily[worst]["day"],
        "retrains": retrains, "promotions": promotions, "rejected_on_a_segment": rejections.count("segment"),
        "triggers": {t: triggers.count(t) for t in sorted(set(triggers))},
        "compute_s": round(time.perf_counter() - started, 1), "quarters": quarters(daily), "daily": daily,
    }


def quarters(daily: list[dict]) -> dict[str, dict]:
    """Per calendar quarter of the replayed days: mean daily ROC AUC, retrains, compute."""
    frame = pd.DataFrame(daily)
    frame["quarter"] = "Q" + pd.to_datetime(frame["day"]).dt.quarter.astype(str)
    frame["retrained"] = frame.get("retrain", pd.Series(index=frame.index, dtype=object)).notna()
    out = {}
    for q, part in frame.groupby("quarter"):
        out[q] = {"days": len(part), "mean_roc_auc": round(float(part["roc_auc"].mean()), 4),
                  "retrains": int(part["retrained"].sum()), "compute_s": round(float(part["compute_s"].sum()), 1)}
    return out


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 4.5))
    for r in results:
        frame = pd.DataFrame(r["daily"]).set_index("day")["roc_auc"]
        frame.index = pd.to_datetime(frame.index)
        ax.plot(frame.rolling(7, min_periods=1).mean(), label=f"{r['policy']}, window {r['window']} (mean "
                f"{r['mean_roc_auc']:.3f}, {r['retrains']} retrains)", linewidth=1.4,
                linestyle="-" if r["window"] == "all" else ":")
    ax.set_ylabel("daily ROC AUC of the deployed model (7-day mean)")
    ax.set_title("Closed-loop replay of 2013: retraining policies")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--start", default="2013-03-02", help="first replayed day (the first model trains on the 60 days before)")
    parser.add_argument("--end", default="2013-12-31")
    parser.add_argument("--workdir", default=str(REPO / "data" / "replay"), help="warehouse of the year's features (built if missing)")
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--windows", default="all", help=f"training windows, of {', '.join(WINDOWS)}")
    args = parser.parse_args(argv)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    url, build_s = build_year(workdir)

    from resources.schemas import flight_features
    from resources.warehouse import Warehouse

    keys = partition_days()
    features = Warehouse(url=url).read(flight_features, keys)
    by_day = {d: part.reset_index(drop=True) for d, part in features.groupby("partition_date")}
    days = [d for d in keys if args.start <= d <= args.end]
    first_end = keys[keys.index(days[0]) - 1]
    print(f"replaying {days[0]} … {days[-1]} ({len(days)} days); first model trained on the days "
          f"ending {first_end}; thresholds: drift share {settings.drift_share}, column "
          f"{settings.column_drift_threshold or f'calibrated q{settings.column_drift_quantile}'}, ROC AUC drop {settings.roc_auc_drop} "
          f"over {settings.performance_window_days} days, cooldown {settings.retrain_cooldown_days} days, "
          f"periodic every {settings.retrain_every_days} days", flush=True)
    results, first_s = [], {}
    for window in args.windows.split(","):
        t1 = time.perf_counter()
        first, _ = train(by_day, first_end, None, window)
        first_s[window] = round(time.perf_counter() - t1, 1)
        for policy in args.policies.split(","):
            results.append(replay(policy, by_day, days, first, lambda m: print(m, flush=True), window))
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    png = out / f"closed_loop_replay_{stamp}.png"
    plot(results, png)
    summary = {
        "days": len(days), "first_model_window_end": first_end, "build_features_s": round(build_s, 1),
        "first_model_s": first_s, "total_s": round(time.perf_counter() - t0, 1),
        "thresholds": {"drift_share": settings.drift_share, "column": settings.column_drift_threshold or f"calibrated q{settings.column_drift_quantile}",
                       "roc_auc_drop": settings.roc_auc_drop, "cooldown_days": settings.retrain_cooldown_days,
                       "every_days": settings.retrain_every_days},
        "policies": [{k: v for k, v in r.items() if k != "daily"} for r in results],
    }
    (out / f"closed_loop_replay_{stamp}.json").write_text(json.dumps(
        {**summary, "daily": {f"{r['window']}/{r['policy']}": r["daily"] for r in results}}, indent=1))
    print()
    print(f"{'window':6s} {'policy':8s} {'mean ROC AUC':>12s} {'worst (day)':>22s} {'retrains':>8s} {'deployed':>8s} "
          f"{'compute s':>9s}   per quarter: mean ROC AUC / retrains / compute s")
    for r in summary["policies"]:
        per_q = "  ".join(f"{q} {v['mean_roc_auc']:.4f}/{v['retrains']}/{v['compute_s']:.0f}" for q, v in r["quarters"].items())
        print(f"{r['window']:6s} {r['policy']:8s} {r['mean_roc_auc']:12.4f} {r['worst_roc_auc']:10.4f} ({r['worst_day']}) "
              f"{r['retrains']:8d} {r['promotions']:8d} {r['compute_s']:9.1f}   {per_q}")
    for window in args.windows.split(","):
        got = {r["policy"]: r for r in summary["policies"] if r["window"] == window}
        if {"sensors", "weekly", "never", "daily"} <= set(got):
            s, w, n, d = got["sensors"], got["weekly"], got["never"], got["daily"]
            below = [q for q in s["quarters"] if s["quarters"][q]["mean_roc_auc"] < n["quarters"][q]["mean_roc_auc"]]
            print(f"window {window}: sensors - weekly = {s['mean_roc_auc'] - w['mean_roc_auc']:+.4f} (target >= +0.01); "
                  f"sensors' retrains / daily's = {s['retrains']}/{d['retrains']} (target <= 1/4); quarters where sensors "
                  f"< never: {below or 'none'} (target none)")
    print(f"\nfeatures build {build_s:.1f} s (0 = reused), total {summary['total_s']:.1f} s; plot {png}")
    return summary


if __name__ == "__main__":
    main()
