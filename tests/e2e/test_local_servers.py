"""The local servers of the profiles as a user starts them (deploy/postgres/local_server.sh,
deploy/mlflow/local_server.sh, deploy/evidently/local_server.sh, deploy/celery/local_broker.sh,
deploy/team/team.sh, flights-mlflow-ui), each on its own folder and port:

- the PostgreSQL server is durable (fsync on) unless a test asks for speed explicitly;
- no secret on any command line of the programs they run or of the servers' processes (every local
  user can read them: ps, /proc/<pid>/cmdline);
- their state folders are this user's, mode 0700, and refused otherwise; their logs and secrets
  private; a stop signals only the process the script started;
- the Redis broker refuses a client without its password.

They do not depend on the store profile: `make test-postgres` does not run them again."""

import os
import shutil
import signal
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.support import POSTGRES_SERVER, REPO, command_lines, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(bool(POSTGRES_SERVER), reason="no store profile in play: run once, by make test")]
BIN = Path(sys.executable).parent
POSTGRES = str(REPO / "deploy/postgres/local_server.sh")
MLFLOW = str(REPO / "deploy/mlflow/local_server.sh")
EVIDENTLY = str(REPO / "deploy/evidently/local_server.sh")
BROKER = str(REPO / "deploy/celery/local_broker.sh")
TEAM = str(REPO / "deploy/team/team.sh")
# the profiles' variables that would point a script at the shared default servers: never inherited here
BASE = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "FLIGHTS_", "WAREHOUSE_", "DAGSTER_", "REDISCLI_"))}


def _run(script: str, command: str, env: dict, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", script, command], env={**BASE, **env}, capture_output=True, text=True, timeout=timeout)


def _exports(out: str) -> dict[str, str]:
    line = next(ln for ln in out.splitlines() if ln.startswith("export "))
    return dict(part.split("=", 1) for part in line.split()[1:])


def _postgres_installed() -> bool:
    return any(Path("/usr/lib/postgresql").glob("*/bin/initdb"))


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL server of the profile's script on its own cluster and port (a folder directly
    under /tmp: as root the server runs as `postgres`, which must reach it)."""
    if not _postgres_installed() and os.geteuid() != 0:
        pytest.skip("PostgreSQL is not installed (deploy/postgres/local_server.sh installs it as root)")
    env = {"FLIGHTS_PGDATA": f"/tmp/flights-test-pg-{uuid.uuid4().hex[:10]}", "FLIGHTS_PGPORT": str(free_port())}
    started = _run(POSTGRES, "start", env)
    assert started.returncode == 0, started.stderr
    url = _exports(started.stdout)["FLIGHTS_POSTGRES_URL"]
    yield {"env": env, "url": url, "password": url.split(":")[2].split("@")[0], "data": Path(env["FLIGHTS_PGDATA"])}
    _run(POSTGRES, "stop", env)
    shutil.rmtree(env["FLIGHTS_PGDATA"], ignore_errors=True)


def _show_fsync(url: str) -> str:
    from sqlalchemy import create_engine

    engine = create_engine(f"{url}/postgres")
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql("SHOW fsync").scalar()
    finally:
        engine.dispose()


def test_the_postgres_profile_is_durable_unless_a_test_asks_for_speed(postgres):
    assert _show_fsync(postgres["url"]) == "on"  # started as a user starts it
    fast = _run(POSTGRES, "start", {**postgres["env"], "FLIGHTS_POSTGRES_UNSAFE_FAST": "1"})  # what the test targets set
    assert fast.returncode == 0, fast.stderr
    assert _show_fsync(postgres["url"]) == "off"
    again = _run(POSTGRES, "start", postgres["env"])  # the next start as a user: durable again, no restart needed
    assert again.returncode == 0, again.stderr
    assert _show_fsync(postgres["url"]) == "on"
    wrong = _run(POSTGRES, "start", {**postgres["env"], "FLIGHTS_POSTGRES_UNSAFE_FAST": "yes"})
    assert wrong.returncode == 1 and "FLIGHTS_POSTGRES_UNSAFE_FAST must be 1" in wrong.stderr


def _strace() -> str:
    """strace, from the OS packages when missing (part of the set-up on a fresh machine, as root)."""
    if shutil.which("strace") is None:
        subprocess.run(["bash", str(REPO / "deploy" / "lib" / "os_packages.sh"), "strace"], check=True, timeout=900)
    return shutil.which("strace")


def test_the_postgres_start_puts_its_password_on_no_command_line(postgres, tmp_path):
    """Every program `start` runs (strace records each execve with its arguments): the password is
    in none, though `start` sets it (ALTER ROLE) at every call."""
    trace = tmp_path / "execve.txt"
    proc = subprocess.run([_strace(), "-f", "-qq", "-e", "trace=execve", "-s", "100000", "-o", str(trace), "bash", POSTGRES, "start"],
                          env={**BASE, **postgres["env"]}, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    programs = [line for line in trace.read_text().splitlines() if "execve(" in line]
    assert any("/psql" in line for line in programs)  # the trace saw the statements go in
    assert [line for line in programs if postgres["password"] in line] == []


def test_no_secret_on_the_command_line_of_any_process_of_the_postgres_and_mlflow_servers(postgres, tmp_path):
    """The running servers and all their children: PostgreSQL, the MLflow tracking server on its
    PostgreSQL backend (deploy/mlflow/local_server.sh) and the MLflow UI (flights-mlflow-ui) on it."""
    mlflow_env = {"FLIGHTS_MLFLOW_DIR": str(tmp_path / "mlflow-server"), "FLIGHTS_MLFLOW_PORT": str(free_port()),
                  "FLIGHTS_MLFLOW_BACKEND": f"{postgres['url']}/mlflow", "MLFLOW_BIN": str(BIN / "mlflow")}
    lock = tmp_path / "a.lock"  # started as CI and the shared test lock do: `flock LOCK script`
    started = subprocess.run(["flock", str(lock), "bash", MLFLOW, "start"], env={**BASE, **mlflow_env}, capture_output=True, text=True,
                             timeout=240)
    assert started.returncode == 0, started.stderr
    # the server inherited no descriptor of the script's: the lock is free while it runs
    assert subprocess.run(["flock", "-n", str(lock), "true"]).returncode == 0, "the server holds the lock its script ran under"
    ui_port = free_port()
    ui_log = open(tmp_path / "mlflow-ui.log", "w")
    ui = subprocess.Popen([str(BIN / "flights-mlflow-ui"), "--port", str(ui_port)], stdout=ui_log, stderr=ui_log, cwd=REPO,
                          env={**BASE, "MLFLOW_TRACKING_URI": f"{postgres['url']}/mlflow"}, start_new_session=True)
    try:
        _wait_http(f"http://127.0.0.1:{ui_port}/health", ui, tmp_path / "mlflow-ui.log")
        secrets = [postgres["password"], _exports(started.stdout)["MLFLOW_TRACKING_PASSWORD"]]
        postmaster = int((postgres["data"] / "postmaster.pid").read_text().split()[0])
        server = int((tmp_path / "mlflow-server" / "server.pid").read_text().split()[0])
        lines = command_lines([postmaster, server, ui.pid])
        assert len(lines) >= 4, lines  # the postmaster and its workers, the tracking server, the UI (and their workers)
        assert {pid: line for pid, line in lines.items() if any(secret in line for secret in secrets)} == {}
        # the tracking server's log, secrets and settings: private to their owner
        for name in ("server.log", "admin.password", "flask.key", "basic_auth.ini"):
            assert (tmp_path / "mlflow-server" / name).stat().st_mode & 0o077 == 0, name
        assert (postgres["data"] / "server.log").stat().st_mode & 0o077 == 0
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(timeout=60)
        _run(MLFLOW, "stop", mlflow_env)


def _wait_http(url: str, proc, log: Path, timeout: float = 180) -> None:
    import time

    deadline = time.time() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except Exception:
            assert proc.poll() is None and time.time() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.5)


# the state folder of each script: (script, command, its variable, the secret or pid file a stranger would plant)
STATE = {
    "mlflow": (MLFLOW, "start", "FLIGHTS_MLFLOW_DIR", "admin.password"),
    "evidently": (EVIDENTLY, "start", "FLIGHTS_EVIDENTLY_DIR", "write.secret"),
    "broker": (BROKER, "start", "FLIGHTS_REDIS_DIR", "redis.password"),
    "team": (TEAM, "down", "FLIGHTS_TEAM_DIR", "team.env"),  # the containers' secrets folder
    "postgres": (POSTGRES, "start", "FLIGHTS_PGDATA", "pipeline.password"),
}


def _isolated(tmp: Path) -> dict:
    """Every script's folder and port its own (nothing reaches the shared default servers)."""
    return {"FLIGHTS_MLFLOW_DIR": str(tmp / "mlflow"), "FLIGHTS_MLFLOW_PORT": str(free_port()),
            "FLIGHTS_EVIDENTLY_DIR": str(tmp / "evidently"), "FLIGHTS_EVIDENTLY_PORT": str(free_port()),
            "FLIGHTS_REDIS_DIR": str(tmp / "redis"), "FLIGHTS_REDIS_PORT": str(free_port()),
            "FLIGHTS_PGDATA": str(tmp / "pgdata"), "FLIGHTS_PGPORT": str(free_port()), "FLIGHTS_TEAM_DIR": str(tmp / "team"),
            "MLFLOW_BIN": str(BIN / "mlflow"), "EVIDENTLY_BIN": str(BIN / "evidently")}


def _stranger() -> str:
    return "nobody"


@pytest.mark.parametrize("wrong", ["mode", "owner"])
@pytest.mark.parametrize("name", list(STATE))
def test_a_state_folder_someone_else_could_have_filled_is_refused(name, wrong, tmp_path):
    """The folder exists before the first start, holding a stranger's secret: with mode 0777, or
    owned by another account (`nobody`, as root). The script refuses it before reading a file in
    it, naming the folder and what is wrong; no server starts on it."""
    script, command, variable, planted = STATE[name]
    if name == "postgres" and not _postgres_installed():
        pytest.skip("PostgreSQL is not installed")
    if name == "broker" and shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    if wrong == "owner" and os.geteuid() != 0:
        pytest.skip("giving a folder to another account needs root")
    env = _isolated(tmp_path)
    folder = Path(env[variable])
    folder.mkdir()
    (folder / planted).write_text("the-strangers-secret")
    if wrong == "mode":
        os.chmod(folder, 0o777)
        if name == "postgres" and os.geteuid() == 0:
            shutil.chown(folder, "postgres")  # as root the cluster's account is `postgres`
    else:
        os.chmod(folder, 0o700)
        shutil.chown(folder, _stranger())
    proc = _run(script, command, env, timeout=300)
    try:
        assert proc.returncode == 1, (proc.stdout, proc.stderr)
        reason = "mode 0777, not 0700" if wrong == "mode" else f"owned by {_stranger()}"
        assert f"{folder} " in proc.stderr and reason in proc.stderr and "refusing" in proc.stderr, proc.stderr
        assert "the-strangers-secret" not in proc.stdout + proc.stderr
    finally:
        if proc.returncode == 0:  # the script used the folder: stop what it started
            for stop_script in (MLFLOW, EVIDENTLY, BROKER, POSTGRES):
                _run(stop_script, "stop", env)


@pytest.mark.parametrize("name", ["mlflow", "evidently"])  # (team.sh: compose stops its own project's containers)
def test_a_stop_signals_only_the_process_the_script_started(name, tmp_path):
    """A pid file that names an unrelated process (here a `sleep` of this test, in the script's own
    private folder: a stale file after a reboot, a reused pid): `stop` / `down` leave it alone."""
    env = _isolated(tmp_path)
    script, _, variable, _ = STATE[name]
    folder = Path(env[variable])
    folder.mkdir(mode=0o700)
    bystander = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        (folder / "server.pid").write_text(f"{bystander.pid}\n")
        proc = _run(script, "stop", env)
        assert proc.returncode == 0, proc.stderr
        assert bystander.poll() is None, "stop killed a process it did not start"
        assert f"names process {bystander.pid}, which is not the one started here" in proc.stderr
    finally:
        bystander.kill()
        bystander.wait()


def test_the_broker_refuses_a_client_without_its_password(tmp_path):
    if shutil.which("redis-server") is None and os.geteuid() != 0:
        pytest.skip("redis-server is not installed (deploy/celery/local_broker.sh installs it as root)")
    env = {"FLIGHTS_REDIS_DIR": str(tmp_path / "redis"), "FLIGHTS_REDIS_PORT": str(free_port())}
    started = _run(BROKER, "start", env)
    assert started.returncode == 0, started.stderr
    try:
        import redis

        broker = _exports(started.stdout)["FLIGHTS_CELERY_BROKER"]
        password = (tmp_path / "redis" / "redis.password").read_text()
        assert broker == f"redis://:{password}@127.0.0.1:{env['FLIGHTS_REDIS_PORT']}/0"
        stranger = redis.Redis(host="127.0.0.1", port=int(env["FLIGHTS_REDIS_PORT"]), protocol=2)  # RESP2: the plain NOAUTH reply
        with pytest.raises(redis.AuthenticationError, match="Authentication required"):  # NOAUTH
            stranger.lpush("dagster", "an injected task")
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(host="127.0.0.1", port=int(env["FLIGHTS_REDIS_PORT"]), password="guessed").ping()
        client = redis.Redis.from_url(broker)
        assert client.ping() and client.lpush("dagster", "a task") == 1
        assert _run(BROKER, "flush", env).returncode == 0 and client.llen("dagster") == 0  # the flush the tests use
        server = int((tmp_path / "redis" / "redis.pid").read_text().split()[0])
        assert not any(password in line for line in command_lines([server]).values())
        for name in ("redis.password", "redis.conf", "redis.log"):
            assert (tmp_path / "redis" / name).stat().st_mode & 0o077 == 0, name
        # a second start finds the running server and hands out the same URL
        assert _exports(_run(BROKER, "start", env).stdout)["FLIGHTS_CELERY_BROKER"] == broker
    finally:
        _run(BROKER, "stop", env)
