"""The team profile's MLflow tracking server (deploy/mlflow/local_server.sh): PostgreSQL (or SQLite)
backend, artifacts proxied by the server, basic-auth on. Anonymous requests are refused; a wrong
password fails the retrain at once with a message naming the user and no secret anywhere; with the
right credentials the lifecycle runs over http only and the client host keeps no artifact; the
server down in the middle of a retrain fails the deployment step naming it, and no alias moves."""

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support import REPO, free_port, make_dagster_home, store_url

BIN = Path(sys.executable).parent
DAYS = ("2013-06-01", "2013-06-10")


@pytest.fixture
def tracking_server(tmp_path):
    backend = store_url(tmp_path / "store", "mlflow")  # the server's own folder is the script's to create (mode 0700)
    env = {**os.environ, "FLIGHTS_MLFLOW_DIR": str(tmp_path / "server"), "FLIGHTS_MLFLOW_PORT": str(free_port()),
           "FLIGHTS_MLFLOW_BACKEND": backend, "MLFLOW_BIN": str(BIN / "mlflow")}
    script = str(REPO / "deploy" / "mlflow" / "local_server.sh")
    out = subprocess.run(["bash", script, "start"], env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    exported = dict(part.split("=", 1) for part in out.stdout.split()[1:])  # export A=.. B=..
    yield exported, tmp_path / "server" / "server.log", backend
    subprocess.run(["bash", script, "stop"], env=env, capture_output=True, timeout=60)


def _status(url: str, auth: tuple[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if auth:
        import base64

        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_the_lifecycle_over_an_authenticated_tracking_server(tracking_server, tmp_path, monkeypatch):
    server, server_log, _ = tracking_server
    uri, user, password = server["MLFLOW_TRACKING_URI"], server["MLFLOW_TRACKING_USERNAME"], server["MLFLOW_TRACKING_PASSWORD"]
    assert uri.startswith("http://127.0.0.1:")
    search = f"{uri}/api/2.0/mlflow/experiments/search?max_results=1"
    assert _status(search)[0] == 401  # anonymous: refused
    code, body = _status(search, (user, "wrong-password"))
    assert code == 401 and "not authenticated" in body.lower()
    assert _status(search, (user, password))[0] == 200

    home = make_dagster_home(tmp_path / "dagster_home")
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(DAGSTER_HOME=str(home), FLIGHTS_DATA_DIR=str(data), WAREHOUSE_URL=store_url(data, "warehouse"),
               MLFLOW_TRACKING_URI=uri, MLFLOW_TRACKING_USERNAME=user, MLFLOW_TRACKING_PASSWORD=password)

    def dagster(*args, **extra):
        return subprocess.run([str(BIN / "dagster"), *args[:2], "-m", "pipelines.definitions", *args[2:]],
                              env={**env, **extra}, capture_output=True, text=True, timeout=900, cwd=REPO)

    proc = dagster("asset", "materialize", "--select", "*flight_features", "--partition-range", f"{DAYS[0]}...{DAYS[1]}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = tmp_path / "retrain.json"
    config.write_text(json.dumps({"ops": {"training_set": {"config": {"end_day": DAYS[1], "window_days": 10, "min_rows": 500}}}}))

    # a wrong password: the retrain fails at once (no retries), naming the user, never a secret
    wrong = "Wr0ng-pa55word-xyz"
    proc = dagster("job", "execute", "-j", "retrain_job", "-c", str(config), MLFLOW_TRACKING_PASSWORD=wrong)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0 and f"MLflow tracking server {uri} refused the request of user 'pipeline'" in output
    assert "STEP_UP_FOR_RETRY" not in output
    assert wrong not in output and password not in output and wrong not in server_log.read_text()

    # the right credentials: the retrain registers and deploys over http, scoring loads the model
    # through the server's artifact proxy, and this host keeps no artifact of its own
    proc = dagster("job", "execute", "-j", "retrain_job", "-c", str(config))
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = dagster("asset", "materialize", "--select", "predictions", "--partition", DAYS[1])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert password not in proc.stdout + proc.stderr and password not in server_log.read_text()
    assert not (data / "mlartifacts").exists()

    from resources.registry import ModelRegistry

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    registry = ModelRegistry(tracking_uri=uri)
    champion = registry.champion()
    assert champion is not None and champion.version == "1"
    assert registry.client.get_model_version_download_uri(champion.name, "1").startswith("mlflow-artifacts:")

    # the server goes down in the middle of a retrain whose candidate the gate would promote: the
    # deployment step fails naming the server, after its retries, and no alias moves
    gate = {"ops": {"training_set": {"config": {"end_day": DAYS[1], "window_days": 10, "min_rows": 500}},
                    "model_evaluation": {"config": {"min_margin": -1.0}}}}
    proc = dagster("asset", "materialize", "--select", "training_set,candidate_model,model_evaluation",
                   "--config-json", json.dumps(gate))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert registry.by_alias("previous") is None
    script = str(REPO / "deploy" / "mlflow" / "local_server.sh")
    server_env = {**os.environ, "FLIGHTS_MLFLOW_DIR": str(tmp_path / "server")}
    subprocess.run(["bash", script, "stop"], env=server_env, capture_output=True, timeout=60, check=True)
    proc = dagster("asset", "materialize", "--select", "champion_model", FLIGHTS_STORE_RETRIES="1",
                   FLIGHTS_STORE_RETRY_DELAY="0.2")
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0 and f"MLflow tracking store {uri} unreachable" in output, output[-3000:]
    assert "STEP_UP_FOR_RETRY" in output and password not in output  # retried (transient), no secret shown
    restart = subprocess.run(["bash", script, "start"], capture_output=True, text=True, timeout=180, env={
        **server_env, "FLIGHTS_MLFLOW_PORT": uri.rsplit(":", 1)[1], "FLIGHTS_MLFLOW_BACKEND": tracking_server[2],
        "MLFLOW_BIN": str(BIN / "mlflow")})
    assert restart.returncode == 0, restart.stderr[-2000:]
    assert registry.champion().version == "1" and registry.by_alias("previous") is None  # no alias moved
