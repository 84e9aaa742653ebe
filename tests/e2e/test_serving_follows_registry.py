"""The scoring server (two worker processes) follows the `champion` alias under load: 4 clients
for 24 s on loopback while the champion is promoted and then rolled back. No request fails; each client sees the version
change at most once per alias move; every response names (X-Model-Version) the version that was
champion within 10 s of the request, and its numbers are that version's, never a mix; every
served flight is in the warehouse. A champion that cannot be loaded leaves the old one serving,
shown by /serving and sent as an alert."""

import json
import os
import random
import shutil
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import create_engine

from tests.support import WebhookReceiver, free_port, json_records, start_server, stop_server, store_url

pytestmark = pytest.mark.e2e
CLIENTS, SECONDS = 4, 24


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """A registry with three versions that score differently, and an empty warehouse."""
    from assets.training.build import pip_requirements, training_dataset
    from assets.training.logic import ModelParams, fit_candidate
    from resources.records import BuildInfo, RetrainTrigger
    from resources.registry import ModelRegistry
    from served_model.features import model_input
    from tests.support import feature_days, training_set_of

    tmp = tmp_path_factory.mktemp("serving")
    days = [f"2013-05-{d:02d}" for d in range(1, 11)]
    ts = training_set_of(feature_days(days), days)
    registry = ModelRegistry(tracking_uri=store_url(tmp, "mlflow"), artifact_root=str(tmp / "artifacts"))
    build = BuildInfo("dagster-run", "retrain_job", "commit", "lock", "1")
    rows = model_input(ts.split("test").head(300))
    expected = {}
    for version, iterations in (("1", 5), ("2", 40), ("3", 10)):
        fitted = fit_candidate(ts, ModelParams(max_iter=iterations))
        run = registry.start_training_run(ts.window, RetrainTrigger(), build, run_name=f"v{version}")
        registry.register_candidate(
            fitted.model, run_id=run, params={"max_iter": iterations}, metrics={}, threshold=fitted.threshold,
            sample=rows.head(20), dataset=training_dataset(ts.window, "sqlite:///w.db#flight_features"),
            pip_requirements=pip_requirements())
        expected[version] = fitted.model.predict_proba(rows)[:, 1]
    registry.promote("1", by="test", reason="start")
    return {"registry": registry, "rows": json_records(rows), "expected": expected, "tmp": tmp,
            "warehouse": store_url(tmp, "warehouse")}


def _post(url: str, rows: list[dict]):
    request = urllib.request.Request(url + "/invocations", data=json.dumps({"inputs": rows}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return (response.status, response.headers["X-Model-Version"], json.loads(response.read())["predictions"],
                response.headers["X-Serving-Worker"])


def test_serving_follows_the_champion_under_load(stores, tmp_path):
    registry, rows, expected = stores["registry"], stores["rows"], stores["expected"]
    hook = WebhookReceiver()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    from pipelines.serving.server import serve_command

    cmd, env = serve_command(registry, "127.0.0.1", port)
    env.update({"WAREHOUSE_URL": stores["warehouse"], "FLIGHTS_SERVE_POLL_SECONDS": "1",
                "FLIGHTS_SERVE_RECORD_SECONDS": "0.5", "FLIGHTS_ALERT_WEBHOOK_URL": hook.url,
                "FLIGHTS_ALERT_RETRIES": "0", "MLFLOW_ARTIFACT_ROOT": str(stores["tmp"] / "artifacts")})
    server, log = start_server(cmd, env, tmp_path / "serve.log", url + "/ping")
    moves: list[tuple[float, str]] = [(0.0, "1")]  # (when the alias moved, to which version): v1 from the start
    results: list[list[tuple]] = [[] for _ in range(CLIENTS)]
    failures: list[str] = []
    stop = threading.Event()

    def client(n: int):
        rng = random.Random(n)
        while not stop.is_set():
            i = rng.randrange(len(rows))
            sent = time.time()
            try:
                status, version, predictions, worker = _post(url, [rows[i]])
            except Exception as exc:  # noqa: BLE001 - every failure is counted
                failures.append(f"client {n}: {exc}")
                continue
            results[n].append((sent, time.time(), version, i, predictions[0][1], status, worker))

    try:
        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        started = time.time()
        for t in threads:
            t.start()
        time.sleep(7)
        registry.promote("2", by="test", reason="a promotion under load")
        moves.append((time.time(), "2"))
        time.sleep(8)
        assert registry.rollback(None, by="test", reason="a rollback under load")[1] == "1"
        moves.append((time.time(), "1"))
        time.sleep(max(0.0, SECONDS - (time.time() - started)))
        stop.set()
        for t in threads:
            t.join()
        duration = time.time() - started

        assert not failures, failures[:5]
        served = [r for per_client in results for r in per_client]
        assert duration >= 20 and len(served) > 500, (duration, len(served))
        assert all(r[5] == 200 for r in served)
        assert len({r[6] for r in served}) == 2  # both worker processes served, and switched together
        for n, per_client in enumerate(results):
            versions = [r[2] for r in per_client]
            changes = sum(a != b for a, b in zip(versions, versions[1:]))
            assert changes <= len(moves) - 1, (n, changes)
            assert versions[0] == "1" and "2" in versions and versions[-1] == "1", (n, versions[0], versions[-1])

        def champion_between(t0: float, t1: float) -> set[str]:
            """The versions that held `champion` at some moment in [t0, t1]."""
            held = {v for when, v in moves if t0 <= when <= t1}
            held.add(max((m for m in moves if m[0] <= t0), key=lambda m: m[0])[1])
            return held

        for sent, answered, version, i, p, _, _ in served:
            assert version in champion_between(sent - 10, answered), (sent, version, moves)
            assert p == pytest.approx(expected[version][i], abs=1e-9)  # that version's numbers, whole
        for when, version in moves[1:]:
            first = min(r[1] for r in served if r[2] == version and r[0] >= when)
            assert first - when < 10, (version, first - when)

        # every served flight reached the warehouse, with the version that answered it
        deadline = time.time() + 20
        engine = create_engine(stores["warehouse"])
        while True:
            recorded = pd.read_sql("SELECT model_version, probability_late FROM served_predictions", engine)
            if len(recorded) >= len(served) or time.time() > deadline:
                break
            time.sleep(0.5)
        assert len(recorded) == len(served)
        assert recorded["model_version"].value_counts().to_dict() == pd.Series([r[2] for r in served]).value_counts().to_dict()

        # a champion whose artifacts are missing: refused, the old version keeps serving, people are told
        source = registry.client.get_model_version_download_uri(registry.model_name, "3")
        shutil.rmtree(Path(source.removeprefix("file://")))
        registry.promote("3", by="test", reason="a broken version")
        deadline = time.time() + 20
        while not hook.received and time.time() < deadline:
            time.sleep(0.5)
        for _ in range(10):  # every worker
            status, version, _, _ = _post(url, rows[:1])
            assert (status, version) == (200, "1")
        serving = json.loads(urllib.request.urlopen(url + "/serving", timeout=10).read())
        assert serving["version"] == "1" and "artifacts missing" in serving["failed_versions"]["3"]
        # this worker's recorder (each worker records what it served)
        assert serving["recording"]["recorded_rows"] > 0 and serving["recording"]["dropped"] == 0
        assert len(hook.received) == 1 and "v3 cannot be served; v1 keeps serving" in hook.texts()[0]
        assert "secret-token" not in log.name and "secret-token" not in Path(log.name).read_text()
    finally:
        stop.set()
        stop_server(server, log)
        hook.close()
        os.environ.pop("MLFLOW_TRACKING_URI", None)  # mlflow.set_tracking_uri exported it: not for later tests


def test_bad_requests_are_refused_naming_the_field(stores, tmp_path):
    registry, rows = stores["registry"], stores["rows"]
    registry.promote("2", by="test", reason="for this test") if registry.champion().version != "2" else None
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    from pipelines.serving.server import serve_command

    cmd, env = serve_command(registry, "127.0.0.1", port, record=False)
    env["MLFLOW_ARTIFACT_ROOT"] = str(stores["tmp"] / "artifacts")
    server, log = start_server(cmd, env, tmp_path / "serve.log", url + "/ping")
    try:
        for bad, field in (([{k: v for k, v in r.items() if k != "distance"} for r in rows[:3]], "distance"),
                           ([{**rows[0], "distance": "far"}], "distance"),
                           ([{**rows[0], "distanse": 1.0}], "distanse")):
            with pytest.raises(urllib.error.HTTPError) as exc:
                _post(url, bad)
            assert exc.value.code == 400 and field in exc.value.read().decode()
            assert exc.value.headers["X-Model-Version"] == registry.champion().version
    finally:
        stop_server(server, log)
