"""The team profile end to end: every piece of state in a service, steps on two Celery workers
started from two separate copies of the repository that share no folder.

Services (on loopback): PostgreSQL (a fresh Dagster instance database and warehouse database),
Redis (the broker), an MLflow tracking server (basic-auth, artifacts proxied, its own fresh
PostgreSQL backend) and an Evidently UI service (its own workspace, write secret). The launching
process (the `dagster` CLI here, the daemon later) runs from this checkout; the steps run on the
workers, each with its own empty data folder. The lifecycle: ingest a window -> retrain -> deploy
-> score -> drift and performance reports -> a retrain started by the real `drift_sensor` in a
real `dagster-daemon`. Then the audit UI: `dagster-webserver --read-only` shows lineage and the
champion, and offers no launching.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support import REPO, assert_no_welcome_dialog, command_lines, free_port, start_server, stop_server, wait_for_text

pytestmark = pytest.mark.team
BIN = Path(sys.executable).parent
START, TRAIN_END, END = "2013-04-10", "2013-06-10", "2013-06-12"
DRIFT_DAY = "2013-06-11"


def _run(cmd: list[str], env: dict, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, **kw)


def _exports(out: str) -> dict[str, str]:
    """The variables of an `export A=.. B=..` line printed by a deploy/ script."""
    line = next(ln for ln in out.splitlines() if ln.startswith("export "))
    return dict(part.split("=", 1) for part in line.split()[1:])


def _fresh_database(server: str, name: str) -> str:
    import uuid

    from sqlalchemy import create_engine

    database = f"team_{name}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{database}"')
    admin.dispose()
    return f"{server}/{database}"


def _copy_of_the_repository(target: Path) -> Path:
    """The repository's files (tracked and new, not ignored) in a folder of their own."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    root = tmp_path_factory.mktemp("team")
    if shutil.which("redis-server") is None and os.geteuid() != 0:
        pytest.skip("redis-server is not installed (deploy/celery/local_broker.sh installs it as root)")
    # a test may trade the server's durability for speed, and says so (a user's start is durable)
    postgres = _exports(_run(["bash", str(REPO / "deploy/postgres/local_server.sh"), "start"],
                             {**os.environ, "FLIGHTS_POSTGRES_UNSAFE_FAST": "1"}).stdout)
    server = postgres["FLIGHTS_POSTGRES_URL"]
    broker_script = str(REPO / "deploy/celery/local_broker.sh")
    broker = _exports(_run(["bash", broker_script, "start"], os.environ).stdout)
    assert _run(["bash", broker_script, "flush"], os.environ).returncode == 0  # no task left from an earlier run
    mlflow_port, evidently_port = free_port(), free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "FLIGHTS_", "WAREHOUSE_", "DAGSTER_"))}
    mlflow = _run(["bash", str(REPO / "deploy/mlflow/local_server.sh"), "start"], {
        **base, "FLIGHTS_MLFLOW_DIR": str(root / "mlflow-server"), "FLIGHTS_MLFLOW_PORT": str(mlflow_port),
        "FLIGHTS_MLFLOW_BACKEND": _fresh_database(server, "mlflow"), "MLFLOW_BIN": str(BIN / "mlflow")})
    assert mlflow.returncode == 0, mlflow.stderr
    evidently = _run(["bash", str(REPO / "deploy/evidently/local_server.sh"), "start"], {
        **base, "FLIGHTS_EVIDENTLY_DIR": str(root / "evidently-server"), "FLIGHTS_EVIDENTLY_PORT": str(evidently_port),
        "EVIDENTLY_BIN": str(BIN / "evidently")})
    assert evidently.returncode == 0, evidently.stderr
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy/team/dagster.yaml", home / "dagster.yaml")
    services = {
        **_exports(mlflow.stdout), **_exports(evidently.stdout), **broker,
        "DAGSTER_PG_URL": _fresh_database(server, "dagster"), "WAREHOUSE_URL": _fresh_database(server, "warehouse"),
        "FLIGHTS_SOURCE": "replay", "FLIGHTS_STORE_RETRY_DELAY": "0.5", **{
            k: v for k, v in {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1", "GX_ANALYTICS_ENABLED": "False"}.items()},
    }
    launcher = {**base, **services, "DAGSTER_HOME": str(home), "FLIGHTS_EXECUTOR": "celery",
                "FLIGHTS_DATA_DIR": str(root / "launcher-data"), "PYTHONPATH": str(REPO)}
    # two workers, each from its own copy of the repository with its own empty data folder
    workers, copies = [], []
    for i in (1, 2):
        copy = _copy_of_the_repository(root / f"host-{i}" / "repo")
        data = root / f"host-{i}" / "data"
        data.mkdir()
        # a dead worker's unfinished task goes to the other worker after 90 s (default 600 s; the
        # longest step of these tests takes well under that)
        env = {**base, **services, "FLIGHTS_DATA_DIR": str(data), "PYTHONPATH": f"{copy}{os.pathsep}{copy / 'deploy/celery'}",
               "FLIGHTS_CELERY_VISIBILITY_TIMEOUT": "90"}
        log = open(root / f"worker-{i}.log", "w")
        workers.append(subprocess.Popen(
            [str(BIN / "celery"), "-A", "dagster_celery.app", "worker", "-Q", "dagster", "--pool", "solo",
             "--prefetch-multiplier=1", "-n", f"host-{i}@%h", "--loglevel", "INFO"],
            env=env, cwd=copy, stdout=log, stderr=log, start_new_session=True))
        copies.append({"repo": copy, "data": data, "log": root / f"worker-{i}.log"})
    time.sleep(3)
    assert all(w.poll() is None for w in workers), [c["log"].read_text()[-2000:] for c in copies]
    broker_password = broker["FLIGHTS_CELERY_BROKER"].split("://:", 1)[1].split("@", 1)[0]
    yield {"root": root, "env": launcher, "services": services, "workers": workers, "copies": copies, "home": home,
           "secrets": [services["MLFLOW_TRACKING_PASSWORD"], services["FLIGHTS_EVIDENTLY_SECRET"], broker_password],
           "database_password": server.split(":")[2].split("@")[0]}
    for w in workers:
        if w.poll() is None:  # a worker a test killed is gone already
            os.killpg(w.pid, 15)
    for w in workers:
        try:
            w.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(w.pid, 9)
    for script, env in (("deploy/evidently/local_server.sh", {"FLIGHTS_EVIDENTLY_DIR": str(root / "evidently-server")}),
                        ("deploy/mlflow/local_server.sh", {"FLIGHTS_MLFLOW_DIR": str(root / "mlflow-server")})):
        _run(["bash", str(REPO / script), "stop"], {**base, **env})


def _dagster(team, *args, env=None):
    proc = _run([str(BIN / "dagster"), *args], {**team["env"], **(env or {})}, cwd=REPO, timeout=900)
    assert proc.returncode == 0, (args, proc.stdout[-2000:], proc.stderr[-4000:])
    return proc


def _instance(team):
    from dagster import DagsterInstance

    os.environ["DAGSTER_PG_URL"] = team["services"]["DAGSTER_PG_URL"]
    return DagsterInstance.from_config(str(team["home"]))


def _registry(team):
    from resources.registry import ModelRegistry

    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        os.environ[key] = team["services"][key]
    return ModelRegistry(tracking_uri=team["services"]["MLFLOW_TRACKING_URI"])


def _service_pids(team) -> list[int]:
    """The running servers of the profile: PostgreSQL, Redis, MLflow, Evidently (their pid files)."""
    files = [Path(os.environ.get("FLIGHTS_PGDATA", "/tmp/flights-pgdata")) / "postmaster.pid",
             Path(os.environ.get("FLIGHTS_REDIS_DIR", "/tmp/flights-redis")) / "redis.pid",
             team["root"] / "mlflow-server" / "server.pid", team["root"] / "evidently-server" / "server.pid"]
    return [int(f.read_text().split()[0]) for f in files]


def _wait(predicate, timeout: float, what: str, interval: float = 2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_the_lifecycle_on_two_workers_that_share_no_files(team, tmp_path):
    from dagster import DagsterEventType, DagsterRunStatus, EventRecordsFilter, RunsFilter

    # 1. a window of days ingested, validated and featurized (one run)
    _dagster(team, "asset", "materialize", "-m", "pipelines.definitions", "--select", "*flight_features",
             "--partition-range", f"{START}...{END}")
    # 2. retrain on the 60 days ending TRAIN_END; the first model is deployed
    config = tmp_path / "retrain.yaml"
    config.write_text(json.dumps({"ops": {"training_set": {"config": {"end_day": TRAIN_END}}}}))
    _dagster(team, "job", "execute", "-m", "pipelines.definitions", "-j", "retrain_job", "-c", str(config))
    registry = _registry(team)
    assert registry.champion().version == "1"

    # 3. the real daemon, with the drift sensor on (the others stopped: this test asks for one retrain)
    for sensor in ("monitor_sensor", "performance_sensor", "landing_sensor"):
        _dagster(team, "sensor", "stop", "-m", "pipelines.definitions", sensor)
    daemon_env = {**team["env"], "FLIGHTS_SENSOR_INTERVAL_SECONDS": "3", "FLIGHTS_RETRAIN_COOLDOWN_DAYS": "0"}
    daemon_log = open(team["root"] / "daemon.log", "w")
    daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-m", "pipelines.definitions"], env=daemon_env,
                              cwd=REPO, stdout=daemon_log, stderr=daemon_log, start_new_session=True)
    try:
        instance = _instance(team)

        def drift_sensor_started():
            return any(s.instigator_name == "drift_sensor" and s.instigator_data and s.instigator_data.cursor
                       for s in instance.all_instigator_state())

        _wait(drift_sensor_started, 180, "the drift sensor's first tick")
        # 4. score and report two days; the drift threshold of the first is set to 0, so it drifts
        for day, drift_share in ((DRIFT_DAY, 0.0), (END, None)):
            run_config = {"ops": {"drift_report": {"config": {"drift_share": drift_share}}}} if drift_share is not None else {}
            _dagster(team, "asset", "materialize", "-m", "pipelines.definitions", "--select",
                     "predictions,drift_report,performance_report", "--partition", day, "--config-json", json.dumps(run_config))

        # 5. the sensor's retrain, launched by the daemon, its steps on the workers; meanwhile the
        # command line of every process of the profile (servers, workers, the daemon and what they
        # started: code servers, run workers) is read
        seen: dict[int, str] = {}
        roots = [daemon.pid, *(w.pid for w in team["workers"]), *_service_pids(team)]

        def sensor_retrain():
            seen.update(command_lines(roots))
            runs = instance.get_runs(RunsFilter(tags={"trigger": "drift_sensor"}))
            return runs if runs and runs[0].status in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE) else None

        (retrain,) = _wait(sensor_retrain, 600, "the sensor-triggered retrain")
    finally:
        os.killpg(daemon.pid, 15)
        daemon.wait(timeout=60)
    assert retrain.status == DagsterRunStatus.SUCCESS, (team["root"] / "daemon.log").read_text()[-3000:]
    # no secret on any command line (every local user reads them: ps, /proc/<pid>/cmdline)
    assert len(seen) > len(roots), seen
    secrets = [*team["secrets"], team["database_password"]]
    assert {pid: line[:300] for pid, line in seen.items() if any(secret in line for secret in secrets)} == {}
    assert retrain.tags["trigger.partition"] == DRIFT_DAY and retrain.tags["dagster/run_key"] == f"drift_sensor:{DRIFT_DAY}"
    version = registry.record("2")
    assert version.trigger.kind == "drift_sensor" and version.build.dagster_run_id == retrain.run_id

    # every step of every run ran on one of the two workers, and both took steps
    starts = instance.get_event_records(EventRecordsFilter(event_type=DagsterEventType.STEP_START), limit=1000)
    pids = {r.event_log_entry.dagster_event.pid for r in starts}
    worker_pids = {w.pid for w in team["workers"]}
    assert pids <= worker_pids, (pids, worker_pids)
    by_worker = {pid: sum(r.event_log_entry.dagster_event.pid == pid for r in starts) for pid in worker_pids}
    assert all(n > 0 for n in by_worker.values()), by_worker
    steps = {r.event_log_entry.dagster_event.step_key for r in starts}
    assert {"validated_flights", "flight_features", "candidate_model", "champion_model", "predictions",
            "drift_report", "performance_report"} <= steps

    # no step relied on another host's files: each host's data folder holds only its own cache,
    # the launcher's holds nothing, and no metadata names a local path
    for copy in team["copies"]:
        written = [p.relative_to(copy["data"]).parts[0] for p in copy["data"].rglob("*") if p.is_file()]
        assert set(written) <= {"reports"}, written  # the drift reference cache, rebuilt from the stores
    launcher_data = Path(team["env"]["FLIGHTS_DATA_DIR"])
    assert not launcher_data.exists() or not any(launcher_data.rglob("*"))
    assert not (team["home"] / "storage").exists() or not any((team["home"] / "storage").rglob("*"))
    roots = [str(team["root"]), str(REPO)]
    materialized = instance.get_event_records(EventRecordsFilter(event_type=DagsterEventType.ASSET_MATERIALIZATION), limit=2000)
    links = []
    for record in materialized:
        for key, value in record.event_log_entry.dagster_event.event_specific_data.materialization.metadata.items():
            shown = repr(value)  # every kind whole: a table's rows and schema too (they refuse to be iterated)
            assert type(value).__name__ != "PathMetadataValue", key
            assert not any(root in shown for root in roots), (key, shown[:300])
            assert not any(secret in shown for secret in team["secrets"]), key
            if type(value).__name__ == "UrlMetadataValue":
                links.append((key, value.value))
    # every link opens on a service
    kinds = {key for key, _ in links}
    assert {"data_docs", "mlflow_run", "model_version_url", "model_card_url", "report", "monitoring_dashboard"} <= kinds
    services = team["services"]
    assert all(url.startswith((services["MLFLOW_TRACKING_URI"], services["FLIGHTS_EVIDENTLY_URL"])) for _, url in links), links
    report = next(url for key, url in links if key == "report")
    assert urllib.request.urlopen(report, timeout=10).status == 200

    # the model card and the Data Docs are artifacts in the tracking server's store
    card = registry.mlflow_module().artifacts.load_text(f"runs:/{version.run_id}/model_card/model_card.md")
    assert "Model card" in card
    # the Evidently project holds the two days' snapshots under their replayed days
    project = report.split("/projects/")[1].split("/")[0]
    reports = json.load(urllib.request.urlopen(f"{services['FLIGHTS_EVIDENTLY_URL']}/api/projects/{project}/reports", timeout=10))
    assert sorted((r["tags"][0], r["timestamp"][:10]) for r in reports) == [
        ("drift", DRIFT_DAY), ("drift", END), ("performance", DRIFT_DAY), ("performance", END)]
    # no secret in any log of the services or the workers
    for log in [*team["root"].glob("*.log"), *team["root"].glob("*/server.log")]:
        text = log.read_text(errors="replace")
        assert not any(secret in text for secret in team["secrets"]), log


def launch_buttons(browser) -> dict[str, bool]:
    """The page's buttons that would start a run: label -> enabled."""
    buttons = browser.find_elements("xpath", "//button[contains(., 'Materialize') or contains(., 'Launch')]")
    return {b.text.strip(): b.is_enabled() for b in buttons if b.is_displayed()}


def test_the_read_only_ui_shows_lineage_and_the_champion_and_offers_no_launch(team, browser, tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    server, log = start_server(
        [str(BIN / "dagster-webserver"), "-w", str(REPO / "workspace.yaml"), "-h", "127.0.0.1",
         "-p", url.rsplit(":", 1)[1], "--read-only"], {**team["env"], "DAGSTER_PG_URL": team["services"]["DAGSTER_PG_URL"]},
        tmp_path / "webserver.log", url + "/server_info")
    shots = Path(os.environ.get("FLIGHTS_SCREENSHOT_DIR") or tmp_path)
    try:
        browser.get(f"{url}/assets/champion_model?view=lineage&lineageScope=upstream&lineageDepth=8")
        wait_for_text(browser, ["champion_model", "model_evaluation", "candidate_model", "training_set", "flight_features"])
        assert_no_welcome_dialog(browser)
        browser.save_screenshot(str(shots / "team_read_only_lineage.png"))
        browser.get(f"{url}/assets/champion_model")
        wait_for_text(browser, ["champion_model", "model_card_url", "promoted"])
        browser.save_screenshot(str(shots / "team_read_only_champion.png"))
        buttons = launch_buttons(browser)
        assert "Materialize" in buttons and not any(buttons.values()), buttons  # shown, disabled: no launching
        # the job's launchpad is not offered either: its page has only a disabled "Materialize all"
        browser.get(f"{url}/locations/flight_delay/jobs/retrain_job/playground")
        wait_for_text(browser, ["retrain_job", "Materialize all"])
        buttons = launch_buttons(browser)
        assert "Materialize all" in buttons and not any(buttons.values()), buttons
    finally:
        stop_server(server, log)



def test_a_worker_killed_in_the_middle_of_a_step_costs_a_rerun_not_a_day(team):
    """SIGKILL of the worker running `flight_features` (a month of days): its task goes to the other worker once its
    visibility timeout has passed, the step runs again from the start, the run succeeds, and every
    day is whole (each flight once, as many as were validated)."""
    import signal

    from dagster import DagsterEventType, DagsterRunStatus
    from sqlalchemy import create_engine, text

    instance = _instance(team)
    known = {r.run_id for r in instance.get_runs()}
    days = ("2013-07-01", "2013-07-31")  # a month: the feature step runs for seconds, long enough to be killed in
    cli = subprocess.Popen([str(BIN / "dagster"), "asset", "materialize", "-m", "pipelines.definitions", "--select",
                            "*flight_features", "--partition-range", f"{days[0]}...{days[1]}"],
                           env=team["env"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def started():
        runs = [r for r in instance.get_runs() if r.run_id not in known]
        if not runs:
            return None
        records = instance.get_records_for_run(runs[0].run_id, of_type=DagsterEventType.STEP_START).records
        found = [r.event_log_entry.dagster_event for r in records if r.event_log_entry.dagster_event.step_key == "flight_features"]
        return (runs[0].run_id, found[0].pid) if found else None

    run_id, pid = _wait(started, 300, "flight_features to start on a worker", interval=0.1)
    killed = next(w for w in team["workers"] if w.pid == pid)
    os.killpg(killed.pid, signal.SIGKILL)
    finished = [r for r in instance.get_records_for_run(run_id, of_type=DagsterEventType.STEP_SUCCESS).records
                if r.event_log_entry.dagster_event.step_key == "flight_features"]
    assert not finished, "the step ended before the kill: the test did not kill it mid-step"
    output, _ = cli.communicate(timeout=900)
    assert cli.returncode == 0, output[-4000:]
    assert instance.get_run_by_id(run_id).status == DagsterRunStatus.SUCCESS
    starts = [r.event_log_entry.dagster_event.pid for r in
              instance.get_records_for_run(run_id, of_type=DagsterEventType.STEP_START).records
              if r.event_log_entry.dagster_event.step_key == "flight_features"]
    survivor = next(w.pid for w in team["workers"] if w.pid != pid)
    assert starts == [pid, survivor]  # started on the killed worker, run again on the other one
    engine = create_engine(team["env"]["WAREHOUSE_URL"])
    with engine.connect() as conn:
        counts = conn.execute(text(
            "SELECT partition_date, count(*), count(DISTINCT row_number) FROM flight_features "
            "WHERE partition_date BETWEEN :a AND :b GROUP BY partition_date"), {"a": days[0], "b": days[1]}).all()
        valid = dict(conn.execute(text(
            "SELECT partition_date, count(*) FROM validated_flights WHERE partition_date BETWEEN :a AND :b "
            "GROUP BY partition_date"), {"a": days[0], "b": days[1]}).all())
    engine.dispose()
    assert len(counts) == 31
    for day, rows, distinct in counts:  # every day whole, each flight once
        assert rows == distinct == valid[day], (day, rows, distinct, valid[day])


def test_the_broker_refuses_a_client_without_its_password(team):
    """Redis requires the profile's generated password (the workers and the launcher have it in
    their broker URL): a local client without it can neither read, inject nor flush a task."""
    import redis

    url = team["services"]["FLIGHTS_CELERY_BROKER"]
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    with pytest.raises(redis.AuthenticationError, match="Authentication required"):  # NOAUTH
        redis.Redis(host="127.0.0.1", port=port, protocol=2).llen("dagster")
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=port).flushall()
    assert redis.Redis.from_url(url).ping()
