"""Benchmark of the model half; figures printed and written to bench/results/.

1. retrain_job on the default 60-day window through the CLI (process start included), its
   steps, the MLflow logging + registration part of it, and a plain script that fits and
   evaluates the same model on the same rows (process start included); ratio. And the floor of
   that ratio: what starting, importing and exiting costs with Dagster, MLflow's SQL store and
   skops over the plain script's libraries, measured in processes that do nothing else.
2. Batch scoring: rows/s of the scoring function (input preparation + predict_proba + output
   frame) against predict_proba alone on the same rows; and of the whole `predictions` step
   (warehouse read and write included).
3. Serving: MLflow's scoring server on loopback, single-row requests: p50 / p99 latency, and
   throughput with 8 concurrent clients.
4. Model quality forward in time over 2013: every 28 days, a retrain as candidate_model makes it
   on all the days before the next 14 test days (the search of training windows judged on the
   14 days before them; tuning with --fold-tuning-trials), its ROC AUC on the test days; and, for
   comparison with the published 0.764 (a random split), a random 80/20 split of the year.

    python bench/bench_model.py [--retrain-only | --quality-only] [--fold-tuning-trials=N]
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
BIN = Path(sys.executable).parent

from resources.settings import configure_process  # noqa: E402

configure_process()

PLAIN_FIT = """
import sys, time, json
sys.path.insert(0, {repo!r})
import pandas as pd
from sqlalchemy import create_engine
from dataclasses import asdict
from assets.training.logic import build_training_set, split_days, window_days, fit_candidate, ModelParams, SearchPolicy, LABEL
from assets.evaluation.logic import metrics, permutation_importance_table
from resources.records import TrainingWindow
from served_model.features import model_input
days = window_days({end!r}, 60)
frame = pd.read_sql("SELECT * FROM flight_features WHERE partition_date BETWEEN '" + days[0] + "' AND '" + days[-1] + "'", create_engine({url!r}))
ts = build_training_set(frame, TrainingWindow(split_days(days)), 2000)
# the untuned retrain's model work: the window search, the refit, calibration, and the evaluation's
# permutation importance of two models (candidate and champion)
fitted = fit_candidate(ts, ModelParams(), SearchPolicy(tuning_trials=0), calibrate_on_test=True)
test = ts.split("test")
permutation_importance_table({{"candidate": fitted.model, "champion": fitted.model}}, test)
print(json.dumps(asdict(metrics(test[LABEL].to_numpy(), fitted.model.predict_proba(model_input(test))[:, 1], fitted.threshold))))
"""


def _env(root: Path) -> dict:
    home = root / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    return {**os.environ, "DAGSTER_HOME": str(home), "FLIGHTS_DATA_DIR": str(root / "data"),
            "WAREHOUSE_URL": f"sqlite:///{root / 'data' / 'warehouse.db'}",
            "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'data' / 'mlflow.db'}",
            "MLFLOW_ARTIFACT_ROOT": str(root / "data" / "mlartifacts"), "VIRTUAL_ENV": sys.prefix}


def _run(cmd, env) -> float:
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
    if proc.returncode:
        raise SystemExit(f"failed: {' '.join(map(str, cmd))}\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t


# the libraries a retrain imports beyond the plain script's: Dagster, MLflow's SQL store, skops and
# the model card's plotting library
STACK_IMPORTS = ("import dagster, pandas, sqlalchemy, sklearn.ensemble, mlflow, mlflow.pyfunc, mlflow.sklearn, skops.io; "
                 "import mlflow.store.tracking.sqlalchemy_store, matplotlib.pyplot")
PLAIN_IMPORTS = "import pandas, sqlalchemy, sklearn.ensemble"


def import_floor(repeats: int = 3) -> dict:
    """Start, import and exit of a process, doing nothing else: with the libraries a retrain
    through Dagster, MLflow's SQL store and skops needs, and with those of the plain script."""
    def best(code):
        walls = []
        for _ in range(repeats):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
            walls.append(time.perf_counter() - t)
        return min(walls)

    stack, plain = best(STACK_IMPORTS), best(PLAIN_IMPORTS)
    return {"stack_import_and_exit_s": round(stack, 2), "plain_import_and_exit_s": round(plain, 2),
            "import_and_exit_excess_s": round(stack - plain, 2)}


def retrain(root: Path, results: dict) -> dict:
    env = _env(root)
    dg = str(BIN / "dg")
    _run([dg, "launch", "--assets", "*flight_features", "--partition-range", "2013-01-01...2013-03-07"], env)
    cfg = root / "retrain.yaml"
    cfg.write_text(json.dumps({"ops": {"training_set": {"config": {"end_day": "2013-03-01"}}}}))
    retrain_cmd = [dg, "launch", "--job", "retrain_job", "-c", str(cfg)]
    # with the default search (FLIGHTS_TUNING_TRIALS 20), then twice without tuning (the second one
    # also has a champion to compare with, like every retrain after the first)
    tuned = _run(retrain_cmd, {**env, "FLIGHTS_TUNING_TRIALS": "20"})
    walls = [_run(retrain_cmd, {**env, "FLIGHTS_TUNING_TRIALS": "0"}) for _ in range(2)]
    from dagster import AssetKey, DagsterInstance

    inst = DagsterInstance.from_config(env["DAGSTER_HOME"])
    meta = inst.fetch_materializations(AssetKey("candidate_model"), limit=1).records[0].asset_materialization.metadata
    plain = root / "plain_fit.py"
    plain.write_text(PLAIN_FIT.format(repo=str(REPO), end="2013-03-01", url=env["WAREHOUSE_URL"]))
    t = time.perf_counter()
    out = subprocess.run([sys.executable, str(plain)], env=env, capture_output=True, text=True)
    plain_wall = time.perf_counter() - t
    plain_auc = json.loads(out.stdout.strip().splitlines()[-1])["roc_auc"]
    run = inst.get_runs(limit=1)[0]
    steps = {s.step_key: round(s.end_time - s.start_time, 2) for s in inst.get_run_step_stats(run.run_id)}
    floor = import_floor()
    results["retrain"] = {
        "tuned_wall_s": round(tuned, 1),
        "wall_s": [round(w, 1) for w in walls],
        "steps_s": steps,
        "mlflow_logging_and_registration_s": meta["mlflow_logging_seconds"].value,
        "plain_fit_and_evaluate_s": round(plain_wall, 1),
        "ratio": round(min(walls) / plain_wall, 2),
        "plain_test_roc_auc": round(plain_auc, 4),
        **floor,
        # the least any retrain through Dagster + MLflow + skops can take: the plain script plus
        # the libraries' own start and exit, plus the MLflow logging measured above
        "ratio_floor": round((plain_wall + floor["import_and_exit_excess_s"] + meta["mlflow_logging_seconds"].value) / plain_wall, 2),
    }
    # target: the ratio within 10 % of its floor, and the MLflow logging and registration <= 1 s
    r = results["retrain"]
    r["ratio_over_floor"] = round(r["ratio"] / r["ratio_floor"], 2)
    print(f"retrain with tuning (20 trials): {tuned:.1f} s (target <= 60 s); without: {max(walls):.1f} s (target <= 20 s)", flush=True)
    print(f"retrain: {min(walls):.1f} s vs plain fit-and-evaluate {plain_wall:.1f} s = {r['ratio']:.2f}x; floor "
          f"{r['ratio_floor']:.2f}x; ratio / floor {r['ratio_over_floor']:.2f} (target <= 1.10); MLflow logging and "
          f"registration {r['mlflow_logging_and_registration_s']:.2f} s (target <= 1 s)", flush=True)
    print("retrain:", results["retrain"], flush=True)
    # the whole predictions step through the CLI, process start and warehouse I/O included
    wall = _run([dg, "launch", "--assets", "predictions", "--partition-range", "2013-03-02...2013-03-07"], env)
    import pandas as pd
    from sqlalchemy import create_engine

    rows = int(pd.read_sql("SELECT count(*) AS n FROM predictions", create_engine(env["WAREHOUSE_URL"]))["n"][0])
    results["predictions_step_cli"] = {"rows": rows, "wall_s": round(wall, 1)}
    print("predictions step via CLI:", results["predictions_step_cli"], flush=True)
    return env


def scoring(env: dict, results: dict) -> None:
    import pandas as pd
    from sqlalchemy import create_engine

    from assets.scoring.logic import score
    from resources.registry import ModelRegistry
    from served_model.features import model_input

    reg = ModelRegistry(tracking_uri=env["MLFLOW_TRACKING_URI"], artifact_root=env["MLFLOW_ARTIFACT_ROOT"])
    champion = reg.champion()
    model = reg.load(champion.version)
    feats = pd.read_sql("SELECT * FROM flight_features", create_engine(env["WAREHOUSE_URL"]))
    feats = pd.concat([feats] * 4, ignore_index=True)  # ~230k rows
    X = model_input(feats)
    best_direct, best_score = float("inf"), float("inf")
    for _ in range(3):
        t = time.perf_counter(); model.predict_proba(X); best_direct = min(best_direct, time.perf_counter() - t)
        t = time.perf_counter(); score(feats, model, 0.3, "m", "1"); best_score = min(best_score, time.perf_counter() - t)
    results["batch_scoring"] = {
        "rows": len(feats),
        "predict_proba_rows_per_s": round(len(feats) / best_direct),
        "scoring_function_rows_per_s": round(len(feats) / best_score),
        "ratio": round(best_direct / best_score, 3),
    }
    print("batch scoring:", results["batch_scoring"], flush=True)


def serving(env: dict, results: dict) -> None:
    import pandas as pd
    from sqlalchemy import create_engine

    from pipelines.serving.server import serve_command
    from resources.registry import ModelRegistry
    from served_model.features import model_input

    reg = ModelRegistry(tracking_uri=env["MLFLOW_TRACKING_URI"], artifact_root=env["MLFLOW_ARTIFACT_ROOT"])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
    cmd, senv = serve_command(reg, "127.0.0.1", port, record=False)
    server = subprocess.Popen(cmd, env=senv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(url + "/ping", timeout=2); break
            except Exception:
                time.sleep(0.5)
        feats = pd.read_sql("SELECT * FROM flight_features LIMIT 500", create_engine(env["WAREHOUSE_URL"]))
        X = model_input(feats)
        records = X.astype(object).where(X.notna(), None).to_dict(orient="records")
        bodies = [json.dumps({"inputs": [r]}).encode() for r in records]

        def call(body):
            req = urllib.request.Request(url + "/invocations", data=body, headers={"Content-Type": "application/json"})
            t = time.perf_counter(); urllib.request.urlopen(req, timeout=30).read(); return time.perf_counter() - t

        for b in bodies[:50]:
            call(b)  # warm-up
        lat = sorted(call(b) for b in bodies)
        p50, p99 = lat[len(lat) // 2], lat[int(len(lat) * 0.99) - 1]
        done = []
        stop = time.perf_counter() + 10

        def client(k):
            n = 0
            while time.perf_counter() < stop:
                call(bodies[(k * 61 + n) % len(bodies)]); n += 1
            done.append(n)

        threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
        t = time.perf_counter()
        [th.start() for th in threads]; [th.join() for th in threads]
        elapsed = time.perf_counter() - t
        results["serving"] = {"single_row_p50_ms": round(p50 * 1000, 1), "single_row_p99_ms": round(p99 * 1000, 1),
                              "requests": len(lat), "throughput_8_clients_rps": round(sum(done) / elapsed, 1)}
        print("serving:", results["serving"], flush=True)
    finally:
        server.terminate(); server.wait(timeout=30)


def quality(results: dict, tuning_trials: int = 0) -> None:
    """Forward in time over the year, from the embedded data (features as the pipeline builds them)."""
    import pandas as pd

    from assets.common import partition_days
    from assets.evaluation.logic import metrics
    from assets.features.logic import build_features
    from assets.training.logic import (
        LABEL,
        ModelParams,
        SearchPolicy,
        TrainingSet,
        build_training_set,
        fit,
        fit_candidate,
        split_days,
        window_days,
    )
    from assets.validation.logic import prepare_for_validation
    from resources.records import TrainingWindow
    from resources.schemas import FLIGHTS, WEATHER
    from resources.source_files import _replay_table
    from served_model.features import model_input

    def typed(dataset, contract):
        replay = _replay_table(dataset)
        days = {d: replay.day(d) for d in replay.rows}
        raw = pd.concat([f.assign(partition_date=d, source_file="f", row_number=range(1, len(f) + 1)) for d, f in days.items()], ignore_index=True)
        frame = prepare_for_validation(raw, contract)
        return frame[["partition_date", "source_file", "row_number", *contract.column_names]]

    feats = build_features(typed("flights", FLIGHTS), typed("weather", WEATHER))
    days = partition_days()
    folds = []
    # each fold is a retrain as candidate_model makes it (default window options, no tuning, refit
    # with the validation days) on every day before the fold's 14 test days: validation on the
    # 14 days before them; the test days never seen by the search, the fit or the threshold
    for start in range(0, len(days) - 74, 28):
        test_days = days[start + 60:start + 74]
        window = window_days(test_days[-1], 365)
        splits = split_days(window)
        assert splits["test"] == test_days
        ts = build_training_set(feats[feats["partition_date"].isin(window)], TrainingWindow(splits), 1000)
        t = time.perf_counter()
        fitted = fit_candidate(ts, ModelParams(), SearchPolicy(tuning_trials=tuning_trials))
        seconds = time.perf_counter() - t
        test = ts.split("test")
        m = metrics(test[LABEL].to_numpy(), fitted.model.predict_proba(model_input(test))[:, 1], fitted.threshold)
        folds.append({"test": f"{test_days[0]}..{test_days[-1]}", "roc_auc": round(m.roc_auc, 4),
                      "train_days_chosen": fitted.chosen.train_days, "trials": len(fitted.trials), "fit_s": round(seconds, 1)})
        print("  fold", folds[-1], flush=True)
    aucs = [f["roc_auc"] for f in folds]
    # the published 0.764 came from a random split; the same protocol with our features, for comparison
    from sklearn.model_selection import train_test_split

    feats = feats[feats[LABEL].notna()].copy()
    feats[LABEL] = feats[LABEL].astype(int)
    train, test = train_test_split(feats, test_size=0.2, random_state=0)
    model = fit(TrainingSet(train.assign(split="train"), TrainingWindow({})), ModelParams())
    random_auc = metrics(test[LABEL].to_numpy(), model.predict_proba(model_input(test))[:, 1], 0.3).roc_auc
    results["quality_forward"] = {"tuning_trials": tuning_trials, "folds": folds, "mean_roc_auc": round(statistics.mean(aucs), 4),
                                  "worst_roc_auc": min(aucs), "bar": 0.764,
                                  "random_split_roc_auc_full_year": round(random_auc, 4)}
    print("quality:", {k: v for k, v in results["quality_forward"].items() if k != "folds"}, flush=True)


def main(retrain_only: bool = False, quality_only: bool = False, tuning_trials: int = 0) -> None:
    results: dict = {}
    if not quality_only:
        with tempfile.TemporaryDirectory() as tmp:
            env = retrain(Path(tmp), results)
            if not retrain_only:
                scoring(env, results)
                serving(env, results)
    if not retrain_only:
        quality(results, tuning_trials)
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    path = out / f"model_{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    trials = next((int(a.split("=", 1)[1]) for a in sys.argv if a.startswith("--fold-tuning-trials=")), 0)
    main(retrain_only="--retrain-only" in sys.argv, quality_only="--quality-only" in sys.argv, tuning_trials=trials)
