"""The team profile as containers (deploy/team/compose.yaml), brought up by `deploy/team/team.sh up`
exactly as `make team-up` does: the images built here (their base from Debian's packages when no
registry can be reached), secrets generated, every service its own container and host on a
network the test's compose project creates, and nothing else ever a target.

The lifecycle goes through the containers: this checkout's CLI ingests days (steps on the two
worker containers), an operator launches the first retrain through the authenticating proxy
(the run starts in the code location's container), the real `drift_sensor` in the daemon's
container starts a retrain, the gate promotes it, the scoring server's container serves the new
version, and the read-only audit UI shows the lineage in a browser. Then faults: a worker
container killed in the middle of a step, the PostgreSQL container restarted in the middle of a
run; and checks that no secret is in `docker inspect`, an image or a log.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.support import REPO, assert_no_welcome_dialog, free_port, wait_for_text

pytestmark = pytest.mark.team
START, TRAIN_END, END = "2013-04-10", "2013-06-10", "2013-06-12"
DRIFT_DAY = "2013-06-11"
LOCATION, REPOSITORY = "flight_delay", "__repository__"
# the first model is deliberately weak (a few shallow trees), so that the sensor's retrain with the
# default hyperparameters beats it by the gate's margin and is promoted
WEAK = {"max_iter": 5, "max_leaf_nodes": 4, "learning_rate": 0.05, "tuning_trials": 0, "refit": False, "calibrate": False}
PORTS = ("WEB", "READONLY", "MLFLOW", "EVIDENTLY", "SERVE", "POSTGRES", "REDIS")


def _run(cmd: list[str], env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, **kw)


def _sourced(env_file: Path) -> dict[str, str]:
    """The environment after `source env_file` (what an operator's shell gets)."""
    out = subprocess.run(["bash", "-c", f"source {env_file} && env -0"], capture_output=True, check=True,
                         env={"PATH": os.environ["PATH"]}).stdout.decode()
    return dict(item.split("=", 1) for item in out.split("\0") if "=" in item)


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    if shutil.which("docker") is None and os.geteuid() != 0:
        pytest.skip("Docker is not installed (deploy/docker/install_docker.sh installs it as root)")
    root = tmp_path_factory.mktemp("team")
    project = f"flightstest{uuid.uuid4().hex[:6]}"
    ports = {name: free_port() for name in PORTS}
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "FLIGHTS_", "WAREHOUSE_", "DAGSTER_"))}
    settings = {
        "FLIGHTS_TEAM_DIR": str(root / "state"), "FLIGHTS_TEAM_PROJECT": project,
        **{f"FLIGHTS_TEAM_{name}_PORT": str(port) for name, port in ports.items()},
        # a test may trade the database's durability for speed (a user's profile is durable)
        "FLIGHTS_TEAM_POSTGRES_FSYNC": "off",
        # a dead worker's unfinished task goes to the other worker after 90 s (default 600 s)
        "FLIGHTS_CELERY_VISIBILITY_TIMEOUT": "90",
        "FLIGHTS_SENSOR_INTERVAL_SECONDS": "3", "FLIGHTS_RETRAIN_COOLDOWN_DAYS": "0", "FLIGHTS_TUNING_TRIALS": "0",
        "FLIGHTS_STORE_RETRIES": "5", "FLIGHTS_STORE_RETRY_DELAY": "0.5",  # 15.5 s of retries in all
        "FLIGHTS_SERVE_POLL_SECONDS": "1",
    }
    started = time.time()
    up = _run(["bash", str(REPO / "deploy/team/team.sh"), "up"], {**base, **settings}, timeout=1800)
    print(f"team-up in {time.time() - started:.0f} s\n{up.stderr[-3000:]}")
    state = root / "state"
    try:
        assert up.returncode == 0, (up.stdout[-2000:], up.stderr[-4000:])
        cli = {**base, **settings, **_sourced(state / "team.env"), "PYTHONPATH": str(REPO)}
        yield {"root": root, "state": state, "project": project, "ports": ports, "cli": cli, "settings": settings,
               "url": {name.lower(): f"http://127.0.0.1:{port}" for name, port in ports.items()},
               "secrets": [line.split("=", 1)[1] for line in (state / "secrets" / "passwords").read_text().split()]}
    finally:
        down = _run(["bash", str(REPO / "deploy/team/team.sh"), "down"], {**base, **settings, "FLIGHTS_TEAM_PURGE": "1"})
        left = _run(["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={project}"]).stdout.split()
        assert down.returncode == 0 and left == [], (down.stderr[-2000:], left)


def _dagster(team, *args):
    proc = _run([str(REPO / ".venv/bin/dagster"), *args], team["cli"], cwd=REPO, timeout=900)
    assert proc.returncode == 0, (args, proc.stdout[-2000:], proc.stderr[-4000:])
    return proc


def _instance(team):
    from dagster import DagsterInstance

    os.environ["DAGSTER_PG_URL"] = team["cli"]["DAGSTER_PG_URL"]
    return DagsterInstance.from_config(str(REPO / "deploy/team"))


def _registry(team):
    from resources.registry import ModelRegistry

    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        os.environ[key] = team["cli"][key]
    return ModelRegistry(tracking_uri=team["cli"]["MLFLOW_TRACKING_URI"])


def _operator(team):
    """The Dagster GraphQL API through the proxy, as the operator's account (what the UI sends)."""
    from dagster_graphql import DagsterGraphQLClient
    from requests.auth import HTTPBasicAuth

    return DagsterGraphQLClient("127.0.0.1", port_number=team["ports"]["WEB"], timeout=60,
                                auth=HTTPBasicAuth(team["cli"]["FLIGHTS_TEAM_UI_USER"], team["cli"]["FLIGHTS_TEAM_UI_PASSWORD"]))


def _stop_sensor(client, name: str) -> None:
    found = client._execute(
        "query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) { __typename ... on Sensor { id } } }",
        {"s": {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "sensorName": name}})["sensorOrError"]
    assert found["__typename"] == "Sensor", found
    stopped = client._execute(
        "mutation($id: String) { stopSensor(id: $id) { __typename ... on StopSensorMutationResult { instigationState { status } } } }",
        {"id": found["id"]})["stopSensor"]
    assert stopped == {"__typename": "StopSensorMutationResult", "instigationState": {"status": "STOPPED"}}, stopped


def _wait(predicate, timeout: float, what: str, interval: float = 2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _containers(team) -> dict[str, str]:
    """service -> container id of the test's compose project"""
    ids = _run(["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={team['project']}"]).stdout.split()
    inspected = json.loads(_run(["docker", "inspect", *ids]).stdout)
    return {c["Config"]["Labels"]["com.docker.compose.service"]: c["Id"] for c in inspected}


def _celery_worker_of_steps(instance, run_id: str) -> list[tuple[str, str]]:
    """(step, worker) for each time a step began executing on a Celery worker, in order"""
    from dagster import DagsterEventType

    found = []
    for record in instance.get_records_for_run(run_id, of_type=DagsterEventType.ENGINE_EVENT).records:
        event = record.event_log_entry.dagster_event
        metadata = event.event_specific_data.metadata if event.event_specific_data else {}
        if "Celery worker" in metadata:
            found.append((metadata["step_keys"].value, metadata["Celery worker"].value))
    return found


def _serving(team) -> dict:
    """The scoring server's status; {} while it does not answer yet (it listens once there is a champion)."""
    try:
        with urllib.request.urlopen(team["url"]["serve"] + "/serving", timeout=10) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, ConnectionError):
        return {}


def _ask(team, flight: dict) -> tuple[dict, str]:
    request = urllib.request.Request(team["url"]["serve"] + "/predict", data=json.dumps(flight).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read()), response.headers["X-Model-Version"]


def test_the_read_write_ui_answers_only_through_the_proxy_and_only_with_an_account(team):
    url = team["url"]["web"] + "/server_info"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, timeout=10)
    assert refused.value.code == 401 and "Basic" in refused.value.headers["WWW-Authenticate"]
    graphql = urllib.request.Request(team["url"]["web"] + "/graphql", data=b'{"query": "{ version }"}',
                                     headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError, match="401"):
        urllib.request.urlopen(graphql, timeout=10)
    wrong = urllib.request.Request(url, headers={"Authorization": "Basic b3BlcmF0b3I6bm90LWl0"})  # operator:not-it
    with pytest.raises(urllib.error.HTTPError, match="401"):
        urllib.request.urlopen(wrong, timeout=10)
    assert _operator(team)._execute("{ version }")["version"] == "1.13.27"
    # the webserver itself is on the internal network only: no port of it is published
    containers = json.loads(_run(["docker", "inspect", *_containers(team).values()]).stdout)
    bindings = {c["Config"]["Labels"]["com.docker.compose.service"]: [b for ports in (c["NetworkSettings"]["Ports"] or {}).values()
                                                                      for b in ports or []] for c in containers}
    published = {service for service, bound in bindings.items() if bound}
    assert published == {"postgres", "redis", "mlflow", "evidently", "proxy", "webserver-read-only", "serving"}, published
    assert {b["HostIp"] for bound in bindings.values() for b in bound} == {"127.0.0.1"}  # loopback only


def test_the_lifecycle_through_the_containers(team, browser, tmp_path):
    from dagster import DagsterEventType, DagsterRunStatus, EventRecordsFilter, RunsFilter

    operator = _operator(team)
    # this test asks for one retrain, by drift: the other sensors that launch work are stopped (in the UI's way)
    for sensor in ("monitor_sensor", "performance_sensor", "landing_sensor"):
        _stop_sensor(operator, sensor)
    # 1. a window of days ingested, validated and featurized by the CLI, its steps on the worker containers
    _dagster(team, "asset", "materialize", "-m", "pipelines.definitions", "--select", "*flight_features",
             "--partition-range", f"{START}...{END}")
    # 2. the first retrain, launched by the operator through the proxy: its run starts in the code location's container
    run_id = operator.submit_job_execution(
        "retrain_job", repository_location_name=LOCATION, repository_name=REPOSITORY,
        run_config={"ops": {"training_set": {"config": {"end_day": TRAIN_END}}, "candidate_model": {"config": WEAK}}})
    status = _wait(lambda: (s := operator.get_run_status(run_id)) in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE) and s,
                   600, "the first retrain")
    assert status == DagsterRunStatus.SUCCESS
    registry = _registry(team)
    first = registry.champion()
    assert first.version == "1"
    # the scoring server's container loads it from the registry
    _wait(lambda: _serving(team).get("version") == "1", 180, "the scoring server to serve version 1", interval=1)

    # 3. two days scored and reported; the drift threshold of the first is 0, so it drifts, and the
    # real drift_sensor (daemon container; evaluated in the code location's container) starts a retrain
    instance = _instance(team)
    for day, drift_share in ((DRIFT_DAY, 0.0), (END, None)):
        run_config = {"ops": {"drift_report": {"config": {"drift_share": drift_share}}}} if drift_share is not None else {}
        _dagster(team, "asset", "materialize", "-m", "pipelines.definitions", "--select",
                 "predictions,drift_report,performance_report", "--partition", day, "--config-json", json.dumps(run_config))

    def sensor_retrain():
        runs = instance.get_runs(RunsFilter(tags={"trigger": "drift_sensor"}))
        return runs if runs and runs[0].status in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE) else None

    (retrain,) = _wait(sensor_retrain, 900, "the sensor-triggered retrain")
    assert retrain.status == DagsterRunStatus.SUCCESS
    assert retrain.tags["trigger.partition"] == DRIFT_DAY and retrain.tags["dagster/run_key"] == f"drift_sensor:{DRIFT_DAY}"
    # 4. the gate promoted it (it beats the weak first model), and the scoring server follows
    champion = registry.champion()
    assert champion.version == "2" and champion.trigger.kind == "drift_sensor" and champion.build.dagster_run_id == retrain.run_id
    _wait(lambda: _serving(team).get("version") == "2", 180, "the scoring server to serve version 2", interval=1)
    answer, header = _ask(team, _a_flight(team, END))
    assert header == answer["model_version"] == "2" and 0 <= answer["probability_late"] <= 1

    # every step of every run ran on one of the two worker containers, and both took steps
    runs = instance.get_runs()
    workers = [worker for r in runs for _, worker in _celery_worker_of_steps(instance, r.run_id)]
    assert set(workers) == {"worker-1@worker-1", "worker-2@worker-2"}, set(workers)
    steps = {r.event_log_entry.dagster_event.step_key
             for r in instance.get_event_records(EventRecordsFilter(event_type=DagsterEventType.STEP_START), limit=2000)}
    assert {"validated_flights", "flight_features", "candidate_model", "champion_model", "predictions",
            "drift_report", "performance_report"} <= steps
    # no metadata names a local path or holds a secret; every link opens on a published service
    links = []
    for record in instance.get_event_records(EventRecordsFilter(event_type=DagsterEventType.ASSET_MATERIALIZATION), limit=2000):
        for key, value in record.event_log_entry.dagster_event.event_specific_data.materialization.metadata.items():
            shown = repr(value)
            assert type(value).__name__ != "PathMetadataValue", key
            assert "/var/lib/flights" not in shown and "/opt/app" not in shown and str(REPO) not in shown, (key, shown[:300])
            assert not any(secret in shown for secret in team["secrets"]), key
            if type(value).__name__ == "UrlMetadataValue":
                links.append((key, value.value))
    assert {"data_docs", "mlflow_run", "model_version_url", "model_card_url", "report", "monitoring_dashboard"} <= {k for k, _ in links}
    assert all(url.startswith((team["url"]["mlflow"], team["url"]["evidently"])) for _, url in links), links
    report = next(url for key, url in links if key == "report")
    assert urllib.request.urlopen(report, timeout=10).status == 200

    # 5. the audit UI (its own container, read-only) shows the lineage and the champion, and offers no launching
    url = team["url"]["readonly"]
    shots = Path(os.environ.get("FLIGHTS_SCREENSHOT_DIR") or tmp_path)
    browser.get(f"{url}/assets/champion_model?view=lineage&lineageScope=upstream&lineageDepth=8")
    wait_for_text(browser, ["champion_model", "model_evaluation", "candidate_model", "training_set", "flight_features"])
    assert_no_welcome_dialog(browser)
    browser.save_screenshot(str(shots / "team_read_only_lineage.png"))
    browser.get(f"{url}/assets/champion_model")
    wait_for_text(browser, ["champion_model", "model_card_url", "promoted"])
    buttons = {b.text.strip(): b.is_enabled() for b in browser.find_elements(
        "xpath", "//button[contains(., 'Materialize') or contains(., 'Launch')]") if b.is_displayed()}
    assert "Materialize" in buttons and not any(buttons.values()), buttons


def _a_flight(team, day: str) -> dict:
    from sqlalchemy import create_engine, text

    engine = create_engine(team["cli"]["WAREHOUSE_URL"])
    with engine.connect() as conn:
        row = conn.execute(text("SELECT carrier, flight, origin, dest, sched_dep_ts FROM flight_features "
                                "WHERE partition_date = :d ORDER BY sched_dep_ts LIMIT 1"), {"d": day}).one()
    engine.dispose()
    return {"carrier": row.carrier, "flight": int(row.flight), "origin": row.origin, "dest": row.dest,
            "scheduled_departure": row.sched_dep_ts[:16]}


def _whole_days(team, first: str, last: str) -> None:
    """Every day of the range is in the warehouse once and whole: each flight once, as many as were validated."""
    from sqlalchemy import create_engine, text

    engine = create_engine(team["cli"]["WAREHOUSE_URL"])
    with engine.connect() as conn:
        counts = conn.execute(text(
            "SELECT partition_date, count(*), count(DISTINCT row_number) FROM flight_features "
            "WHERE partition_date BETWEEN :a AND :b GROUP BY partition_date"), {"a": first, "b": last}).all()
        valid = dict(conn.execute(text(
            "SELECT partition_date, count(*) FROM validated_flights WHERE partition_date BETWEEN :a AND :b "
            "GROUP BY partition_date"), {"a": first, "b": last}).all())
    engine.dispose()
    from datetime import date

    assert len(counts) == (date.fromisoformat(last) - date.fromisoformat(first)).days + 1
    for day, rows, distinct in counts:
        assert rows == distinct == valid[day], (day, rows, distinct, valid[day])


def _range_started_on_a_worker(team, first: str, last: str, step: str, interval: float):
    """The CLI ingesting first..last, and its run once `step` has begun on a worker:
    (instance, CLI process, run, the worker it began on)."""
    instance = _instance(team)
    known = {r.run_id for r in instance.get_runs()}
    cli = subprocess.Popen([str(REPO / ".venv/bin/dagster"), "asset", "materialize", "-m", "pipelines.definitions", "--select",
                            "*flight_features", "--partition-range", f"{first}...{last}"],
                           env=team["cli"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def started():
        runs = [r for r in instance.get_runs() if r.run_id not in known]
        on = [w for s, w in _celery_worker_of_steps(instance, runs[0].run_id) if s == step] if runs else []
        return (runs[0], on[0]) if on else None

    run, worker = _wait(started, 300, f"{step} to start on a worker", interval=interval)
    return instance, cli, run, worker


def test_a_worker_container_killed_in_the_middle_of_a_step_costs_a_rerun_not_a_day(team):
    """SIGKILL of the container running `flight_features` (a month of days): its task goes to the
    other worker once its visibility timeout has passed, the step runs again from the start, the
    run succeeds, and every day is whole."""
    from dagster import DagsterEventType, DagsterRunStatus

    days = ("2013-07-01", "2013-07-31")
    instance, cli, run, worker = _range_started_on_a_worker(team, *days, "flight_features", interval=0.1)
    run_id = run.run_id
    service = worker.split("@")[0]
    containers = _containers(team)
    assert _run(["docker", "kill", containers[service]]).returncode == 0
    finished = [r for r in instance.get_records_for_run(run_id, of_type=DagsterEventType.STEP_SUCCESS).records
                if r.event_log_entry.dagster_event.step_key == "flight_features"]
    assert not finished, "the step ended before the kill: the test did not kill it mid-step"
    output, _ = cli.communicate(timeout=900)
    assert cli.returncode == 0, output[-4000:]
    assert instance.get_run_by_id(run_id).status == DagsterRunStatus.SUCCESS
    on = [w for step, w in _celery_worker_of_steps(instance, run_id) if step == "flight_features"]
    survivor = next(w for w in ("worker-1@worker-1", "worker-2@worker-2") if w != worker)
    assert on == [worker, survivor]  # started on the killed container, run again on the other one
    _whole_days(team, *days)
    assert _run(["docker", "start", containers[service]]).returncode == 0  # the host comes back


def test_the_database_container_restarted_in_the_middle_of_a_run_loses_nothing(team):
    """`docker restart` of PostgreSQL (the Dagster instance, the warehouse and MLflow's store) while
    a run validates days: the steps retry the outage, the run succeeds, every day is whole and
    every day's materialization is recorded."""
    from dagster import AssetKey, DagsterEventType, DagsterRunStatus

    days = ("2013-08-01", "2013-08-20")
    instance, cli, run, _ = _range_started_on_a_worker(team, *days, "validated_flights", interval=0.2)
    restarted = _run(["docker", "restart", "-t", "10", _containers(team)["postgres"]])
    assert restarted.returncode == 0, restarted.stderr
    output, _ = cli.communicate(timeout=900)
    assert cli.returncode == 0, output[-4000:]
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.SUCCESS
    _whole_days(team, *days)
    for asset in ("validated_flights", "flight_features"):
        recorded = {r.event_log_entry.dagster_event.partition for r in instance.get_records_for_run(
            run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION).records
            if r.event_log_entry.dagster_event.asset_key == AssetKey(asset)}
        assert len(recorded) == 20, (asset, sorted(recorded))


def test_no_secret_in_docker_inspect_an_image_or_a_log(team):
    secrets = team["secrets"]
    containers = _containers(team)
    inspected = _run(["docker", "inspect", *containers.values()]).stdout
    assert inspected and not [s for s in secrets if s in inspected]
    # every container's users: not root, except where the official images' own entrypoints need it
    users = {c["Config"]["Labels"]["com.docker.compose.service"]: c["Config"]["User"] for c in json.loads(inspected)}
    assert all(users[s] == "flights" for s in ("code", "daemon", "webserver", "worker-1", "worker-2", "serving", "mlflow")), users
    images = sorted({c["Config"]["Image"] for c in json.loads(inspected)})
    for image in images:
        history = _run(["docker", "history", "--no-trunc", image]).stdout
        assert history and not [s for s in secrets if s in history], image
    # the images' files: searched inside a container of each project image (no network; the secrets through stdin)
    for image in [i for i in images if i.startswith(("flights-code", "flights-serving", "flights-proxy"))]:
        found = subprocess.run(["docker", "run", "-i", "--rm", "--network", "none", "--user", "root", "--entrypoint", "sh", image,
                                "-c", "grep -rlsFf /dev/stdin /opt /etc /usr/local /var/lib /home /root /srv || true"],
                               input="\n".join(secrets), capture_output=True, text=True)
        assert found.returncode == 0 and found.stdout == "", (image, found.stdout[:500], found.stderr[-500:])
    # the command line of every process running in every container (what `ps` shows there)
    for service, container in containers.items():
        processes = _run(["docker", "top", container, "-eo", "pid,args"])
        assert processes.returncode == 0 and not [s for s in secrets if s in processes.stdout], service
    # the logs of every container
    for service, container in containers.items():
        logs = _run(["docker", "logs", container])
        text = logs.stdout + logs.stderr
        assert not [s for s in secrets if s in text], service
    # the scoring server's image holds no Dagster
    serving = next(i for i in images if i.startswith("flights-serving"))
    probe = _run(["docker", "run", "--rm", "--network", "none", serving, "python", "-c", "import dagster"])
    assert probe.returncode != 0 and "No module named 'dagster'" in probe.stderr


def test_the_hosts_share_no_volume_and_the_backplane_has_no_way_out(team):
    inspected = json.loads(_run(["docker", "inspect", *_containers(team).values()]).stdout)
    mounts = {c["Config"]["Labels"]["com.docker.compose.service"]: [m for m in c["Mounts"] if m["Type"] == "volume"]
              for c in inspected}
    for service in ("code", "daemon", "webserver", "webserver-read-only", "worker-1", "worker-2", "serving", "proxy"):
        assert mounts[service] == [], (service, mounts[service])
    owners = {}
    for service, volumes in mounts.items():
        for volume in volumes:
            owners.setdefault(volume["Name"], []).append(service)
    assert all(len(services) == 1 for services in owners.values()), owners
    networks = {c["Config"]["Labels"]["com.docker.compose.service"]: sorted(c["NetworkSettings"]["Networks"]) for c in inspected}
    backplane = f"{team['project']}_backplane"
    assert all(backplane in names for names in networks.values())
    assert networks["worker-1"] == networks["worker-2"] == networks["code"] == networks["daemon"] == [backplane]
    assert json.loads(_run(["docker", "network", "inspect", backplane]).stdout)[0]["Internal"] is True


def test_the_broker_refuses_a_client_without_its_password(team):
    import redis

    port = team["ports"]["REDIS"]
    with pytest.raises(redis.AuthenticationError, match="Authentication required"):
        redis.Redis(host="127.0.0.1", port=port, protocol=2).llen("dagster")
    assert redis.Redis.from_url(team["cli"]["FLIGHTS_CELERY_BROKER"]).ping()
