"""The model half end to end through the Dagster CLI: retrain on a short window, the gate,
deployment through registry aliases, rollback with a reason, batch scoring and the scoring server."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from dagster import AssetKey, DagsterInstance
from sqlalchemy import create_engine

from tests.support import every_setting, free_port, json_records, make_dagster_home, start_server, stop_server, store_url

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DAYS = ("2013-06-01", "2013-06-12")
TRAIN_END = "2013-06-10"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("lifecycle")
    home = make_dagster_home(root / "dagster_home")
    e = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "FLIGHTS_DATA_DIR": str(root / "data"),
        "WAREHOUSE_URL": store_url(root / "data", "warehouse"),
        "MLFLOW_TRACKING_URI": store_url(root / "data", "mlflow"),
        "MLFLOW_ARTIFACT_ROOT": str(root / "data" / "mlartifacts"),
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    proc = _dagster(e, "asset", "materialize", "--select", "*flight_features",
                    "--partition-range", f"{DAYS[0]}...{DAYS[1]}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return e


def _dagster(env, *args):
    cmd = [str(BIN / "dagster"), *args[:2], "-m", "pipelines.definitions", *args[2:]]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, cwd=REPO)


def _python(env, module, *args):
    return subprocess.run([sys.executable, "-m", module, *args], env=env, capture_output=True, text=True,
                          timeout=600, cwd=REPO)


def _retrain(env, tmp_path, **gate):
    config = {
        "ops": {
            "training_set": {"config": {"end_day": TRAIN_END, "window_days": 10, "min_rows": gate.pop("min_rows", 500)}},
            "model_evaluation": {"config": gate},
        }
    }
    path = tmp_path / "retrain.yaml"
    path.write_text(json.dumps(config))
    return _dagster(env, "job", "execute", "-j", "retrain_job", "-c", str(path))


def _registry(env):
    from resources.registry import ModelRegistry

    return ModelRegistry(tracking_uri=env["MLFLOW_TRACKING_URI"], artifact_root=env["MLFLOW_ARTIFACT_ROOT"])


def _aliases(env):
    reg = _registry(env)
    return {a: (v.version if (v := reg.by_alias(a)) else None) for a in ("champion", "previous")}


def test_lifecycle(env, tmp_path):
    # 1. first retrain: no champion yet -> deployed; tags lead back to the Dagster run and days
    proc = _retrain(env, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _aliases(env) == {"champion": "1", "previous": None}
    instance = DagsterInstance.from_config(env["DAGSTER_HOME"])
    retrain_run = [r for r in instance.get_runs() if r.job_name == "retrain_job"][0]
    version = _registry(env).champion()
    assert version.build.dagster_run_id == retrain_run.run_id and version.build.package
    days = version.window.splits
    assert days["train"][0] == "2013-06-01" and days["test"][-1] == TRAIN_END
    assert sorted(version.window.data_versions) == [f"2013-06-{d:02d}" for d in range(1, 11)]
    # the version pins the served model's libraries only: no Dagster, no SQLAlchemy
    pinned = _registry(env).pinned_requirements(version.version)
    assert any(r.startswith("scikit-learn==") for r in pinned)
    assert not [r for r in pinned if r.split("==")[0].lower() in ("dagster", "sqlalchemy", "great-expectations")]
    # steps handed over through the stores: nothing under DAGSTER_HOME/storage but compute logs
    storage = Path(env["DAGSTER_HOME"]) / "storage"
    assert not [p for p in storage.rglob("*") if p.is_file() and "compute_logs" not in p.parts]
    card = instance.fetch_materializations(AssetKey("champion_model"), limit=1).records[0].asset_materialization.metadata
    assert card["promoted"].value is True and "first deployment" in card["reasons"].value
    assert "Model card" in card["model_card"].value
    # the card is an artifact of the version's MLflow run, linked into the MLflow UI
    version_run = _registry(env).record("1").run_id
    assert card["model_card_url"].value.endswith(f"/runs/{version_run}/artifacts/model_card/model_card.md")
    assert card["model_version_url"].value == "http://127.0.0.1:5000/#/models/flight_delay_classifier/versions/1"
    stored = _registry(env).mlflow_module().artifacts.load_text(f"runs:/{version_run}/model_card/model_card.md")
    assert stored == card["model_card"].value

    # 2. a failed retrain (too few rows) moves no alias
    proc = _retrain(env, tmp_path, min_rows=10**7)
    assert proc.returncode != 0 and "labelled rows" in proc.stdout + proc.stderr
    assert _aliases(env) == {"champion": "1", "previous": None}

    # 3. a candidate that cannot beat the champion by the margin is not deployed
    proc = _retrain(env, tmp_path, min_margin=1.0)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _aliases(env) == {"champion": "1", "previous": None}
    meta = instance.fetch_materializations(AssetKey("model_evaluation"), limit=1).records[0].asset_materialization.metadata
    assert meta["decision"].value == "KEEP CHAMPION" and "required margin" in meta["reasons"].value

    # 4. the manual override deploys it; the old champion keeps `previous`
    proc = _retrain(env, tmp_path, min_margin=1.0, force_promote=True, override_reason="test override")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _aliases(env) == {"champion": "3", "previous": "1"}

    # 5. rollback: champion back to previous, with a reason; v3 is never restored by a rollback
    def rollback(**config):
        path = tmp_path / "rollback.yaml"
        path.write_text(json.dumps({"ops": {"rollback_champion": {"config": config}}}))
        return _dagster(env, "job", "execute", "-j", "rollback_job", "-c", str(path))

    proc = rollback(reason="late share doubled after the override", requested_by="on-call")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _aliases(env) == {"champion": "1", "previous": None}
    for config, said in (({"reason": "again"}, "no `previous` version to roll back to"),
                         ({"reason": "undo", "target_version": "3"}, "v3 was rolled back"),
                         ({"reason": "typo", "target_version": "42"}, "version '42' of flight_delay_classifier does not exist")):
        proc = rollback(**config)
        assert proc.returncode != 0 and said in proc.stdout + proc.stderr, (config, proc.stderr[-2000:])
        assert _aliases(env) == {"champion": "1", "previous": None}
    event = instance.fetch_materializations(AssetKey("champion_model"), limit=1).records[0].asset_materialization.metadata
    assert (event["event"].value, event["rolled_back_from"].value, event["requested_by"].value) == ("rolled_back", "3", "on-call")

    # 6. batch scoring of the days after the window, the model version on every row
    proc = _dagster(env, "asset", "materialize", "--select", "predictions", "--partition-range", f"2013-06-11...{DAYS[1]}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    engine = create_engine(env["WAREHOUSE_URL"])
    preds = pd.read_sql("SELECT * FROM predictions ORDER BY partition_date, row_number", engine)
    feats = pd.read_sql("SELECT * FROM flight_features WHERE partition_date >= '2013-06-11' ORDER BY partition_date, row_number", engine)
    assert len(preds) == len(feats) and set(preds["model_version"]) == {"1"}

    # 6b. the operator CLIs with every documented setting set, as an operator's shell would have them
    cli_env = {**env, **every_setting(tmp_path)}
    summary = _python(cli_env, "pipelines.commands.summary", "2013-06-01", DAYS[1])
    assert summary.returncode == 0 and "Champion: flight_delay_classifier v1" in summary.stdout, summary.stderr[-3000:]
    chain = _python(cli_env, "pipelines.commands.provenance", "1", "--json")
    assert chain.returncode == 0 and json.loads(chain.stdout)["model"]["version"] == "1", chain.stderr[-3000:]
    rolled = json.loads(_python(cli_env, "pipelines.commands.provenance", "3", "--json").stdout)["alias_moves"]
    assert [e["kind"] for e in rolled] == ["promoted", "rolled_back"]
    assert rolled[-1]["by"] == "on-call" and rolled[-1]["reason"] == "late share doubled after the override"
    assert "rolled back" in _python(cli_env, "pipelines.commands.provenance", "3").stdout
    rebuilt = _python(cli_env, "pipelines.commands.reproduce", "1")
    assert rebuilt.returncode == 0 and "REPRODUCED" in rebuilt.stdout, rebuilt.stdout + rebuilt.stderr[-3000:]

    # 7. MLflow's scoring server answers like the batch predictions; bad requests get a 4xx
    from pipelines.serving.server import serve_command
    from served_model.features import model_input

    port = free_port()
    cmd, serve_env = serve_command(_registry(env), "127.0.0.1", port)
    serve_env["WAREHOUSE_URL"] = env["WAREHOUSE_URL"]
    url = f"http://127.0.0.1:{port}"
    server, log = start_server(cmd, serve_env, tmp_path / "serve.log", url + "/ping")
    try:
        rows = json_records(model_input(feats.head(100)))
        answer = _post(url, {"inputs": rows})  # a large request: through the Pipeline
        got = [p[1] for p in answer["predictions"]]
        assert got == pytest.approx(preds.head(100)["probability_late"].tolist(), abs=1e-9)
        assert _served_version(url, rows[:1]) == "1"
        small = _post(url, {"inputs": rows[:25]})  # small requests: the fast path, same answers
        assert [p[1] for p in small["predictions"]] == pytest.approx(got[:25], abs=1e-12)
        assert _post(url, {"inputs": rows[3:4]})["predictions"][0][1] == pytest.approx(got[3], abs=1e-12)
        missing = [{k: v for k, v in r.items() if k != "distance"} for r in rows]
        code, text = _post_error(url, {"inputs": missing})
        assert 400 <= code < 500 and "distance" in text and "Field required" in text
        mistyped = [dict(r) for r in rows]
        mistyped[0]["distance"] = "far"
        code, text = _post_error(url, {"inputs": mistyped})
        assert 400 <= code < 500 and "distance" in text
        misspelt = [{**r, "distanse": 1.0} for r in rows]
        code, text = _post_error(url, {"inputs": misspelt})
        assert 400 <= code < 500 and "distanse" in text
    finally:
        stop_server(server, log)

    # 7b. a version registered before the served_model package: the scoring server refuses it, saying why
    registry = _registry(env)
    registry.client.delete_model_version_tag(registry.model_name, "1", "served_model.package")
    refused = _python(env, "pipelines.serving.server", "--port", str(free_port()))
    assert refused.returncode != 0 and "registered before the served_model package" in refused.stdout + refused.stderr
    registry.set_version_tags("1", {"served_model.package": "1"})

    # 8. an unreachable tracking store: a clear error, no alias moves
    unreachable = {**env, "MLFLOW_TRACKING_URI": "http://127.0.0.1:9", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
                   "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
    proc = _retrain(unreachable, tmp_path)
    assert proc.returncode != 0 and "unreachable" in proc.stdout + proc.stderr
    assert _aliases(env) == {"champion": "1", "previous": None}

    # 8b. the retrain process killed (SIGKILL) during training, then during evaluation, of a
    # candidate the gate would promote (manual override): no alias moves
    from dagster import DagsterEventType, EventRecordsFilter

    instance = DagsterInstance.from_config(env["DAGSTER_HOME"])
    config = tmp_path / "promote.yaml"
    config.write_text(json.dumps({"ops": {
        "training_set": {"config": {"end_day": TRAIN_END, "window_days": 10, "min_rows": 500}},
        "model_evaluation": {"config": {"force_promote": True, "override_reason": "crash test"}}}}))

    def step_starts(step):
        records = instance.get_event_records(EventRecordsFilter(event_type=DagsterEventType.STEP_START), limit=500)
        return {r.run_id for r in records if r.event_log_entry.dagster_event.step_key == step}

    for step in ("candidate_model", "model_evaluation"):
        before = step_starts(step)
        proc = subprocess.Popen([str(BIN / "dagster"), "job", "execute", "-m", "pipelines.definitions", "-j", "retrain_job",
                                 "-c", str(config)], env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.time() + 300
        while not step_starts(step) - before:
            assert proc.poll() is None and time.time() < deadline, f"the retrain never reached {step}"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        (killed_run,) = step_starts(step) - before
        assert killed_run not in step_starts("champion_model")  # killed before deployment began
        assert _aliases(env) == {"champion": "1", "previous": None}

    # 9. a champion whose artifacts are missing: evaluation fails clearly, nothing changes
    champion = _registry(env).champion()
    source = _registry(env).client.get_model_version_download_uri(champion.name, champion.version)
    local = Path(source.removeprefix("file://"))
    assert local.exists(), source
    shutil.rmtree(local)
    proc = _retrain(env, tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "champion cannot be evaluated" in out and "artifacts missing" in out
    assert _aliases(env) == {"champion": "1", "previous": None}


def _post(url, body):
    req = urllib.request.Request(url + "/invocations", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req, timeout=30).read())


def _served_version(url, rows):
    req = urllib.request.Request(url + "/invocations", data=json.dumps({"inputs": rows}).encode(),
                                 headers={"Content-Type": "application/json"})
    return urllib.request.urlopen(req, timeout=30).headers["X-Model-Version"]


def _post_error(url, body):
    try:
        _post(url, body)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    raise AssertionError("the request was accepted")
