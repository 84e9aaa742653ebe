"""Benchmark of the scoring server that follows the registry (pipelines/serving/server.py), on loopback.

The two versions served: 1, the champion a default retrain produces on 60 days (the search with
the default tuning budget, the refit, the calibration); 2, the largest model the search space
allows (400 trees of 63 leaves), calibrated as the retrain decides.

1. Swap: the `champion` alias moved 5 times between the two versions while a client sends single-row
   requests back to back; the time from each move to the first response by the new version
   (`X-Model-Version`): p50 and max. It is bounded by the poll interval (FLIGHTS_SERVE_POLL_SECONDS,
   default 2 s) plus loading and warming the version.
2. Single-row latency: p50 / p99 of 2000 sequential requests, and with 8 concurrent clients for
   15 s their throughput and p99 — with request recording on (the default) and off, same server
   build, same rows, for each version. Targets: p99 <= 10 ms with recording on (sequential
   requests), >= 500 requests/s with 8 clients. In process, one row's scoring by the served path
   (Treelite) beside scikit-learn's own predict_proba of the same prepared row.
3. Asking by flight (`POST /predict`, the features computed by the server from the warehouse's
   day) beside today's one-feature-row request (`/invocations`), same model, same flights, same
   server, recording on, the two alternated three times: p99 sequential and throughput with 8
   clients. Target: /predict adds at most 2 ms at p99 and keeps >= 90 % of the throughput. The
   feature computation's share of a /predict request is measured in process (FlightDesk.answer
   without the model's predict, over the same flights).

    python bench/bench_serving.py
"""

from __future__ import annotations

import json
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

from resources.settings import configure_process  # noqa: E402

configure_process()


# the window the served models are trained on: 60 train days, as a retrain's smallest window option
TRAIN_DAYS = [f"2013-{m:02d}-{d:02d}" for m, n in ((3, 31), (4, 30), (5, 14)) for d in range(1, n + 1)]


def largest_params():
    """The largest model the search space allows (TUNING_SPACE): the most trees, the most leaves."""
    from assets.training.logic import TUNING_SPACE, ModelParams

    return ModelParams(max_iter=max(TUNING_SPACE["max_iter"]), max_leaf_nodes=max(TUNING_SPACE["max_leaf_nodes"]),
                       min_samples_leaf=min(TUNING_SPACE["min_samples_leaf"]), l2_regularization=0.0)


def registry_with_two_versions(folder: Path):
    """Version 1: the champion a default retrain produces (the search with the default tuning
    budget, the refit and the calibration, as `candidate_model` runs them); version 2: the largest
    model of the search space. Returns the registry, the request bodies and each version's trees."""
    from assets.training.build import pip_requirements, training_dataset
    from assets.training.logic import ModelParams, SearchPolicy, fit_candidate
    from resources.records import BuildInfo, RetrainTrigger
    from resources.registry import ModelRegistry
    from resources.settings import settings
    from served_model.features import model_input
    from served_model.model import fitted_trees
    from tests.support import feature_days, json_records, training_set_of

    ts = training_set_of(feature_days(TRAIN_DAYS), TRAIN_DAYS)
    registry = ModelRegistry(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}", artifact_root=str(folder / "artifacts"))
    build = BuildInfo("bench", "bench", "commit", "lock", "1")
    rows = model_input(ts.split("test").head(500))
    s = settings()
    default_retrain = SearchPolicy(tuning_trials=s.tuning_trials, tuning_seconds=s.tuning_seconds)
    models = {}
    for name, params, policy in (("retrain champion", ModelParams(), default_retrain),
                                 ("largest of the search space", largest_params(), SearchPolicy(train_window_options=(0,)))):
        fitted = fit_candidate(ts, params, policy, calibrate_on_test=True)
        trees, _ = fitted_trees(fitted.model.steps[-1][1])
        chosen = fitted.chosen.params if fitted.chosen else params
        models[name] = {"max_iter": chosen.max_iter, "max_leaf_nodes": chosen.max_leaf_nodes,
                        "trees": int(trees.n_iter_), "leaves": int(sum(p[0].get_n_leaf_nodes() for p in trees._predictors)),
                        "calibration": fitted.calibration.get("method", "none"), "trials": len(fitted.trials)}
        print(f"{name}: {models[name]}", flush=True)
        run = registry.start_training_run(ts.window, RetrainTrigger(), build, run_name=f"bench {name}")
        registry.register_candidate(fitted.model, run_id=run, params=chosen.as_dict(), metrics={},
                                    threshold=fitted.threshold, sample=rows.head(20),
                                    dataset=training_dataset(ts.window, "bench"), pip_requirements=pip_requirements())
    registry.promote("1", by="bench", reason="start")
    return registry, [json.dumps({"inputs": [r]}).encode() for r in json_records(rows)], models


def warehouse_with_days(folder: Path, days: list[str]):
    """The days' validated flights and weather in the server's warehouse (what /predict reads)."""
    import pandas as pd

    from resources.schemas import validated_tables
    from resources.warehouse import Warehouse
    from tests.support import typed_day, write_versions

    warehouse = Warehouse(url=f"sqlite:///{folder / 'warehouse.db'}")
    for name in ("flights", "weather"):
        frame = pd.concat([typed_day(name, d) for d in days], ignore_index=True)
        write_versions(warehouse, f"validated_{name}", {validated_tables[name]: frame}, days)
    return warehouse


def flight_bodies(days: list[str]) -> tuple[list[bytes], list[bytes], list[dict]]:
    """The same flights as /predict bodies (what a caller knows) and as /invocations bodies (their features)."""
    from served_model.features import FEATURE_COLUMNS
    from tests.support import feature_days, json_records

    features = feature_days(days).sample(500, random_state=1)
    asked = [{"carrier": r.carrier, "flight": int(r.flight), "origin": r.origin, "dest": r.dest,
              "scheduled_departure": r.sched_dep_ts[:16]} for r in features.itertuples(index=False)]
    rows = json_records(features[FEATURE_COLUMNS])
    return [json.dumps(a).encode() for a in asked], [json.dumps({"inputs": [r]}).encode() for r in rows], asked


def feature_share(warehouse, asked: list[dict], registry) -> dict:
    """In process: the cost of FlightDesk.answer with a model that costs nothing (the features
    alone, the day loaded) against the same with the served model (features + predict)."""
    import mlflow.pyfunc
    import numpy as np

    from pipelines.serving.by_flight import DayContexts, FlightDesk

    desk = FlightDesk(DayContexts(warehouse, poll_seconds=3600))

    class Free:
        version = "1"

        class scorer:
            @staticmethod
            def predict_proba(rows):
                return np.array([[0.5, 0.5]])

    class Model:
        version = "1"
        scorer = mlflow.pyfunc.load_model(f"models:/{registry.model_name}/1").unwrap_python_model().scorer

    for a in asked:
        desk.answer(a, Free)  # the days loaded
    timings = {}
    for name, served in (("features_only", Free), ("features_and_predict", Model)):
        t = time.perf_counter()
        for _ in range(4):
            for a in asked:
                desk.answer(a, served)
        timings[name] = (time.perf_counter() - t) / (4 * len(asked)) * 1000
    return {"features_ms_per_flight": round(timings["features_only"], 3),
            "features_and_predict_ms_per_flight": round(timings["features_and_predict"], 3),
            "feature_share_of_answer": round(timings["features_only"] / timings["features_and_predict"], 2)}


def in_process(registry, bodies: list[bytes]) -> dict:
    """One row scored in process by each version: the served path (Treelite) beside scikit-learn's
    own `predict_proba` of the classifier step on the same prepared row (the path served before)."""
    import mlflow.pyfunc

    out = {}
    rows = [json.loads(b)["inputs"] for b in bodies[:300]]
    for version in ("1", "2"):
        scorer = mlflow.pyfunc.load_model(f"models:/{registry.model_name}/{version}").unwrap_python_model().scorer
        classifier = scorer.pipeline.steps[-1][1]
        timings = {}
        for name, score in (("treelite_ms", scorer.predict_proba),
                            ("scikit_learn_ms", lambda r, c=classifier, s=scorer: c.predict_proba(s.matrix(r)))):
            for r in rows[:20]:
                score(r)
            ts = []
            for r in rows:
                t = time.perf_counter()
                score(r)
                ts.append(time.perf_counter() - t)
            ts.sort()
            timings[name] = {"p50": round(ts[len(ts) // 2] * 1000, 3), "p99": round(ts[int(len(ts) * 0.99) - 1] * 1000, 3)}
        out[f"version_{version}"] = timings
    return out


def start(registry, folder: Path, record: bool):
    from pipelines.serving.server import serve_command
    from tests.support import free_port

    port = free_port()
    cmd, env = serve_command(registry, "127.0.0.1", port, record=record)
    env.update({"WAREHOUSE_URL": f"sqlite:///{folder / 'warehouse.db'}", "FLIGHTS_SERVE_POLL_SECONDS": "2"})
    log = open(folder / f"serve-{port}.log", "wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log, cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            urllib.request.urlopen(url + "/ping", timeout=2)
            return proc, url
        except Exception:
            assert proc.poll() is None, (folder / f"serve-{port}.log").read_text()[-2000:]
            time.sleep(0.5)
    raise RuntimeError("the server did not start")


def call(url: str, body: bytes, path: str = "/invocations") -> tuple[float, str]:
    request = urllib.request.Request(url + path, data=body, headers={"Content-Type": "application/json"})
    t = time.perf_counter()
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()
        return time.perf_counter() - t, response.headers["X-Model-Version"]


def swaps(registry, url: str, bodies: list[bytes], n: int = 5) -> dict:
    seen: list[tuple[float, str]] = []
    stop = threading.Event()

    def client():
        k = 0
        while not stop.is_set():
            _, version = call(url, bodies[k % len(bodies)])
            seen.append((time.time(), version))
            k += 1

    thread = threading.Thread(target=client)
    thread.start()
    delays = []
    try:
        for i in range(n):
            target = "2" if i % 2 == 0 else "1"
            time.sleep(3)
            moved = time.time()
            registry.promote(target, by="bench", reason=f"swap {i + 1}")
            deadline = moved + 60
            while time.time() < deadline:
                first = next((t for t, v in list(seen) if t >= moved and v == target), None)
                if first is not None:
                    delays.append(first - moved)
                    break
                time.sleep(0.05)
            else:
                raise RuntimeError(f"v{target} was never served")
    finally:
        stop.set()
        thread.join()
    return {"swaps": n, "alias_move_to_first_response_p50_s": round(statistics.median(delays), 2),
            "alias_move_to_first_response_max_s": round(max(delays), 2),
            "requests_during_swaps": len(seen)}


def latency(url: str, bodies: list[bytes], path: str = "/invocations") -> dict:
    for b in bodies[:100]:
        call(url, b, path)  # warm
    sequential = sorted(call(url, bodies[k % len(bodies)], path)[0] for k in range(2000))
    results: list[list[float]] = [[] for _ in range(8)]
    stop = time.perf_counter() + 15

    def client(k):
        n = 0
        while time.perf_counter() < stop:
            results[k].append(call(url, bodies[(k * 61 + n) % len(bodies)], path)[0])
            n += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    concurrent = sorted(x for r in results for x in r)
    return {"single_row_p50_ms": round(sequential[len(sequential) // 2] * 1000, 2),
            "single_row_p99_ms": round(sequential[int(len(sequential) * 0.99) - 1] * 1000, 2),
            "throughput_8_clients_rps": round(len(concurrent) / elapsed, 1),
            "p50_8_clients_ms": round(concurrent[len(concurrent) // 2] * 1000, 2),
            "p99_8_clients_ms": round(concurrent[int(len(concurrent) * 0.99) - 1] * 1000, 2)}


def by_flight(url: str, asked: list[bytes], rows: list[bytes]) -> dict:
    """/invocations with the flights' feature rows and /predict with the same flights, alternated."""
    runs: dict[str, list[dict]] = {"feature_row": [], "by_flight": []}
    for _ in range(3):
        runs["feature_row"].append(latency(url, rows))
        runs["by_flight"].append(latency(url, asked, "/predict"))

    def median(side: str, key: str) -> float:
        return round(statistics.median(r[key] for r in runs[side]), 2)

    out = {side: {k: median(side, k) for k in runs[side][0]} for side in runs}
    out["added_p99_ms"] = round(out["by_flight"]["single_row_p99_ms"] - out["feature_row"]["single_row_p99_ms"], 2)
    out["throughput_kept"] = round(out["by_flight"]["throughput_8_clients_rps"]
                                   / out["feature_row"]["throughput_8_clients_rps"], 3)
    out["targets"] = "added p99 <= 2 ms, throughput kept >= 0.9"
    out["runs"] = runs
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        registry, bodies, models = registry_with_two_versions(folder)
        days = [f"2013-05-{d:02d}" for d in range(8, 15)]
        warehouse = warehouse_with_days(folder, days)
        asked, rows, asked_dicts = flight_bodies(days)
        results: dict = {"models": models}
        proc, url = start(registry, folder, record=True)
        try:
            results["swap"] = swaps(registry, url, bodies)
            print("swap:", results["swap"], flush=True)
            for version, name in (("2", "largest of the search space"), ("1", "retrain champion")):
                registry.promote(version, by="bench", reason="latency")
                time.sleep(5)
                results["recording_on" if version == "1" else "recording_on_largest"] = latency(url, bodies)
                print(f"recording on, {name}:", results["recording_on" if version == "1" else "recording_on_largest"],
                      flush=True)
            status = json.loads(urllib.request.urlopen(url + "/serving", timeout=10).read())
            results["recording_on"]["recorder"] = status["recording"]
            results["by_flight"] = by_flight(url, asked, rows)
            print("by flight:", results["by_flight"], flush=True)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        proc, url = start(registry, folder, record=False)
        try:
            results["recording_off"] = latency(url, bodies)
            print("recording off:", results["recording_off"], flush=True)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        results["single_row_in_process"] = in_process(registry, bodies)
        print("one row in process (1: champion, 2: largest):", results["single_row_in_process"], flush=True)
        results["by_flight"]["in_process"] = feature_share(warehouse, asked_dicts, registry)
        print("by flight, in process:", results["by_flight"]["in_process"], flush=True)
    out = REPO / "bench" / "results" / f"serving_{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"written: {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
