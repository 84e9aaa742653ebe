"""Benchmark of the scoring server that follows the registry (pipelines/serving/server.py), on loopback.

1. Swap: the `champion` alias moved 5 times between two versions while a client sends single-row
   requests back to back; the time from each move to the first response by the new version
   (`X-Model-Version`): p50 and max. It is bounded by the poll interval (FLIGHTS_SERVE_POLL_SECONDS,
   default 2 s) plus loading and warming the version.
2. Single-row latency: p50 / p99 of 2000 sequential requests, and with 8 concurrent clients for
   15 s their throughput and p99 — with request recording on (the default) and off, same server
   build, same rows. Target: p99 <= 10 ms with recording on (sequential requests).

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


def registry_with_two_versions(folder: Path):
    from assets.training.build import pip_requirements, training_dataset
    from assets.training.logic import ModelParams, fit_candidate
    from resources.records import BuildInfo, RetrainTrigger
    from resources.registry import ModelRegistry
    from served_model.features import model_input
    from tests.support import feature_days, json_records, training_set_of

    days = [f"2013-05-{d:02d}" for d in range(1, 15)]
    ts = training_set_of(feature_days(days), days)
    registry = ModelRegistry(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}", artifact_root=str(folder / "artifacts"))
    build = BuildInfo("bench", "bench", "commit", "lock", "1")
    rows = model_input(ts.split("test").head(500))
    for iterations in (100, 200):  # the default model size, and a larger one
        fitted = fit_candidate(ts, ModelParams(max_iter=iterations))
        run = registry.start_training_run(ts.window, RetrainTrigger(), build, run_name=f"bench {iterations}")
        registry.register_candidate(fitted.model, run_id=run, params={"max_iter": iterations}, metrics={},
                                    threshold=fitted.threshold, sample=rows.head(20),
                                    dataset=training_dataset(ts.window, "bench"), pip_requirements=pip_requirements())
    registry.promote("1", by="bench", reason="start")
    return registry, [json.dumps({"inputs": [r]}).encode() for r in json_records(rows)]


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


def call(url: str, body: bytes) -> tuple[float, str]:
    request = urllib.request.Request(url + "/invocations", data=body, headers={"Content-Type": "application/json"})
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


def latency(url: str, bodies: list[bytes]) -> dict:
    for b in bodies[:100]:
        call(url, b)  # warm
    sequential = sorted(call(url, bodies[k % len(bodies)])[0] for k in range(2000))
    results: list[list[float]] = [[] for _ in range(8)]
    stop = time.perf_counter() + 15

    def client(k):
        n = 0
        while time.perf_counter() < stop:
            results[k].append(call(url, bodies[(k * 61 + n) % len(bodies)])[0])
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


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        registry, bodies = registry_with_two_versions(folder)
        results: dict = {}
        proc, url = start(registry, folder, record=True)
        try:
            results["swap"] = swaps(registry, url, bodies)
            print("swap:", results["swap"], flush=True)
            registry.promote("1", by="bench", reason="latency")
            time.sleep(5)
            results["recording_on"] = latency(url, bodies)
            print("recording on: ", results["recording_on"], flush=True)
            status = json.loads(urllib.request.urlopen(url + "/serving", timeout=10).read())
            results["recording_on"]["recorder"] = status["recording"]
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
    out = REPO / "bench" / "results" / f"serving_{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"written: {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
