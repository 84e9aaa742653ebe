"""The closed-loop replay of 2013: how the deployed model fares, day by day, under three
retraining policies.

- never:   the first model (trained on the 60 days ending REPLAY_START - 1) stays deployed;
- weekly:  a retrain every FLIGHTS_RETRAIN_EVERY_DAYS days (the periodic schedule);
- sensors: a retrain when the day's drift or performance verdict crosses its threshold, with
           the cooldown (what drift_sensor / performance_sensor do).

Every retrain goes through the same gate as `model_evaluation` (a candidate that does not beat
the champion on the same test days is not deployed). Each day is scored by the model deployed
*before* the day; its ROC AUC on the day's real outcomes is the policy's daily figure.

What runs: the features of the year come from the warehouse that the real pipeline builds (one
Dagster backfill, shared by the three policies and timed separately); the replay then applies,
in one process, the pipeline's own functions: training set, fit, threshold, metrics, gate
(assets/training/logic.py, assets/evaluation/logic.py), the per-column drift verdicts of
Evidently's stat tests (assets/monitoring/reports.py column_drift, the verdicts drift_report records) and the trailing ROC AUC of
performance_report, and the sensors' rules (pipelines.policy). It skips what does not change a
decision: Dagster run bookkeeping, MLflow logging and HTML rendering per day.

    make replay          # or: python bench/closed_loop_replay.py [--start 2013-03-02] [--end 2013-12-31]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
BIN = Path(sys.executable).parent

from assets.common import partition_days  # noqa: E402
from assets.evaluation.logic import GatePolicy, baseline_scores, decide, metrics  # noqa: E402
from assets.monitoring.logic import DRIFT_COLUMNS_CATEGORICAL, DRIFT_COLUMNS_NUMERIC, reference_and_thresholds  # noqa: E402
from assets.monitoring.reports import column_drift  # noqa: E402
from assets.training.logic import (  # noqa: E402
    LABEL,
    ModelParams,
    build_training_set,
    choose_threshold,
    fit,
    split_days,
    window_days,
)
from pipelines.policy import in_cooldown, retrain_due  # noqa: E402
from resources.records import TrainingWindow  # noqa: E402
from resources.settings import configure_process  # noqa: E402
from resources.settings import settings as current_settings  # noqa: E402
from served_model.features import model_input  # noqa: E402

configure_process()
settings = current_settings()

WINDOW = 60
POLICIES = ("never", "weekly", "sensors")


def build_year(workdir: Path) -> tuple[str, float]:
    """The year's flight_features through the real pipeline (one backfill run), unless present."""
    from sqlalchemy import create_engine, text

    url = f"sqlite:///{workdir / 'warehouse.db'}"
    try:
        with create_engine(url).connect() as conn:
            days = conn.execute(text("SELECT COUNT(DISTINCT partition_date) FROM flight_features")).scalar()
    except Exception:
        days = 0
    if days == 365:
        return url, 0.0
    home = workdir / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text((REPO / "dagster_home" / "dagster.yaml").read_text())
    env = {**os.environ, "DAGSTER_HOME": str(home), "FLIGHTS_DATA_DIR": str(workdir), "WAREHOUSE_URL": url}
    print(f"building the year's features into {url} (one Dagster backfill run) ...", flush=True)
    started = time.perf_counter()
    subprocess.run([str(BIN / "dagster"), "asset", "materialize", "-m", "pipelines.definitions",
                    "--select", "*flight_features", "--partition-range", "2013-01-01...2013-12-31",
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


def train(by_day: dict[str, pd.DataFrame], as_of: str, champion: Deployed | None) -> tuple[Deployed, dict]:
    """retrain_job's decisions: training set, fit, threshold, the gate against the champion."""
    days = window_days(as_of, WINDOW)
    frame = pd.concat([by_day[d] for d in days], ignore_index=True)
    ts = build_training_set(frame, TrainingWindow(split_days(days)), min_rows=2000)
    model = fit(ts, ModelParams())
    val, test, tr = ts.split("validation"), ts.split("test"), ts.split("train")
    threshold = choose_threshold(val[LABEL].to_numpy(), model.predict_proba(model_input(val))[:, 1])
    y = test[LABEL].to_numpy()
    cand = metrics(y, model.predict_proba(model_input(test))[:, 1], threshold)
    champ = None if champion is None else metrics(y, champion.predict(test), champion.threshold)
    base = metrics(y, baseline_scores(tr, test), threshold)
    decision = decide(cand, champ, base, GatePolicy())
    return Deployed(model, threshold, days, cand.roc_auc, frame), decision


def day_auc(y, p) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")


def replay(policy: str, by_day: dict[str, pd.DataFrame], days: list[str], first: Deployed, log) -> dict:
    champion, last_retrain = first, first.days[-1]
    scored: dict[str, pd.DataFrame] = {}  # day -> labelled rows with the deployed model's probability
    daily, retrains, promotions, triggers = [], 0, 0, []
    started = time.perf_counter()
    for i, day in enumerate(days):
        rows = by_day[day]
        p_all = champion.predict(rows)
        has_label = rows[LABEL].notna().to_numpy()
        labelled, p = rows[has_label], p_all[has_label]
        auc = day_auc(labelled[LABEL].astype(int).to_numpy(), p)
        daily.append({"day": day, "roc_auc": auc})
        reason = None
        if policy == "weekly" and retrain_due(day, last_retrain, settings.retrain_every_days):
            reason = "periodic"
        elif policy == "sensors":
            scored[day] = labelled.assign(probability_late=p, model=id(champion))
            current = rows.assign(probability_late=p_all)
            reference, thresholds = champion.reference()
            cols = column_drift(reference, current, DRIFT_COLUMNS_NUMERIC,
                                DRIFT_COLUMNS_CATEGORICAL, thresholds)
            share = sum(c["drifted"] for c in cols) / len(cols)
            trailing = [scored[d] for d in days[max(0, i - settings.performance_window_days + 1): i + 1]
                        if d in scored and scored[d]["model"].iloc[0] == id(champion)]
            pooled = pd.concat(trailing)
            drop = champion.eval_auc - day_auc(pooled[LABEL].astype(int).to_numpy(), pooled["probability_late"].to_numpy())
            daily[-1].update(drift_share=share, roc_auc_drop=drop)
            crossed = ("drift" if share >= settings.drift_share else None) or (
                "performance" if drop >= settings.roc_auc_drop else None)
            if crossed and not in_cooldown(day, last_retrain, settings.retrain_cooldown_days):
                reason = crossed
        if reason:
            candidate, decision = train(by_day, day, champion)
            retrains += 1
            last_retrain = day
            triggers.append(reason)
            if decision.promote:
                champion, promotions = candidate, promotions + 1
        if (i + 1) % 30 == 0 or i + 1 == len(days):
            recent = [d["roc_auc"] for d in daily[-30:]]
            log(f"  {policy:8s} {day}  day {i + 1:3d}/{len(days)}  retrains {retrains:2d}  "
                f"mean ROC AUC (last 30 days) {np.nanmean(recent):.3f}  {time.perf_counter() - started:6.1f} s")
    aucs = np.array([d["roc_auc"] for d in daily])
    worst = int(np.nanargmin(aucs))
    return {
        "policy": policy, "days": len(days), "mean_roc_auc": round(float(np.nanmean(aucs)), 4),
        "worst_roc_auc": round(float(aucs[worst]), 4), "worst_day": daily[worst]["day"],
        "retrains": retrains, "promotions": promotions,
        "triggers": {t: triggers.count(t) for t in sorted(set(triggers))},
        "compute_s": round(time.perf_counter() - started, 1), "daily": daily,
    }


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 4.5))
    for r in results:
        frame = pd.DataFrame(r["daily"]).set_index("day")["roc_auc"]
        frame.index = pd.to_datetime(frame.index)
        ax.plot(frame.rolling(7, min_periods=1).mean(), label=f"{r['policy']} (mean {r['mean_roc_auc']:.3f}, "
                f"{r['retrains']} retrains)", linewidth=1.4)
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
    print(f"replaying {days[0]} … {days[-1]} ({len(days)} days); first model trained on the {WINDOW} days "
          f"ending {first_end}; thresholds: drift share {settings.drift_share}, column "
          f"{settings.column_drift_threshold or f'calibrated q{settings.column_drift_quantile}'}, ROC AUC drop {settings.roc_auc_drop} "
          f"over {settings.performance_window_days} days, cooldown {settings.retrain_cooldown_days} days, "
          f"periodic every {settings.retrain_every_days} days", flush=True)
    t1 = time.perf_counter()
    first, _ = train(by_day, first_end, None)
    first_s = time.perf_counter() - t1
    results = []
    for policy in args.policies.split(","):
        results.append(replay(policy, by_day, days, first, lambda m: print(m, flush=True)))
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    png = out / f"closed_loop_replay_{stamp}.png"
    plot(results, png)
    summary = {
        "days": len(days), "first_model_window_end": first_end, "build_features_s": round(build_s, 1),
        "first_model_s": round(first_s, 1), "total_s": round(time.perf_counter() - t0, 1),
        "thresholds": {"drift_share": settings.drift_share, "column": settings.column_drift_threshold or f"calibrated q{settings.column_drift_quantile}",
                       "roc_auc_drop": settings.roc_auc_drop, "cooldown_days": settings.retrain_cooldown_days,
                       "every_days": settings.retrain_every_days},
        "policies": [{k: v for k, v in r.items() if k != "daily"} for r in results],
    }
    (out / f"closed_loop_replay_{stamp}.json").write_text(json.dumps({**summary, "daily": {r["policy"]: r["daily"] for r in results}}, indent=1))
    print()
    print(f"{'policy':8s} {'mean ROC AUC':>12s} {'worst (day)':>22s} {'retrains':>8s} {'deployed':>8s} {'compute s':>9s}")
    for r in summary["policies"]:
        print(f"{r['policy']:8s} {r['mean_roc_auc']:12.4f} {r['worst_roc_auc']:10.4f} ({r['worst_day']}) "
              f"{r['retrains']:8d} {r['promotions']:8d} {r['compute_s']:9.1f}")
    print(f"\nfeatures build {build_s:.1f} s (0 = reused), total {summary['total_s']:.1f} s; plot {png}")
    return summary


if __name__ == "__main__":
    main()
