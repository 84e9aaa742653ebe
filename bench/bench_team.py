"""Benchmark of the team profile against the embedded default: the same lifecycle, the same
commands, one run each; figures printed and written to bench/results/.

The lifecycle, each step a `dagster` CLI command (process start included):
  1. ingest + validate + features for 2013-01-01 … 2013-03-07 (one run);
  2. retrain_job on the 60 days ending 2013-03-01 (deploys v1);
  3. predictions, drift_report and performance_report for 2013-03-02 … 2013-03-07 (one run).

Embedded default: SQLite warehouse, Dagster instance and MLflow store, local Evidently workspace,
steps in the run's process. Team profile: PostgreSQL (instance and warehouse), the MLflow tracking
server (basic-auth, artifacts proxied), the Evidently UI service, and the steps on two Celery
workers over Redis, each worker with its own data folder. Printed: wall time per step and in all,
the ratio (bar: 1.5), MLflow logging + registration of the candidate through the server (bar:
2 s), and the snapshot upload per day to the Evidently service (bar: 0.3 s).

    python bench/bench_team.py
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
BIN = Path(sys.executable).parent

from resources.settings import configure_process  # noqa: E402

configure_process()

STEPS = [
    ("ingest 2013-01-01..03-07", ["launch", "--assets", "*flight_features", "--partition-range", "2013-01-01...2013-03-07"]),
    ("retrain (60 days to 03-01)", ["launch", "--job", "retrain_job", "-c", "{config}"]),
    ("score + reports 03-02..03-07", ["launch", "--assets", "predictions,drift_report,performance_report",
                                      "--partition-range", "2013-03-02...2013-03-07"]),
]


def _exports(out: str) -> dict[str, str]:
    line = next(ln for ln in out.splitlines() if ln.startswith("export "))
    return dict(part.split("=", 1) for part in line.split()[1:])


def _script(path: str, env: dict, action: str = "start") -> dict[str, str]:
    proc = subprocess.run(["bash", str(REPO / path), action], env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{path} {action} failed:\n{proc.stderr[-2000:]}")
    return _exports(proc.stdout) if action == "start" else {}


def _database(server: str, name: str) -> str:
    from psycopg2 import sql
    from sqlalchemy import create_engine

    database = f"bench_{name}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    raw = admin.raw_connection()
    try:
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database))  # an identifier, quoted by the driver
        with raw.cursor() as cursor:
            cursor.execute(statement)
    finally:
        raw.close()
        admin.dispose()
    return f"{server}/{database}"


def lifecycle(env: dict, root: Path) -> dict[str, float]:
    config = root / "retrain.json"
    config.write_text(json.dumps({"ops": {"training_set": {"config": {"end_day": "2013-03-01"}}}}))
    walls = {}
    for name, args in STEPS:
        args = [a.replace("{config}", str(config)) for a in args]
        started = time.perf_counter()
        proc = subprocess.run([str(BIN / "dg"), *args], env={**env, "VIRTUAL_ENV": sys.prefix}, cwd=REPO, capture_output=True,
                              text=True)
        walls[name] = round(time.perf_counter() - started, 1)
        if proc.returncode:
            raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
        print(f"  {name}: {walls[name]} s", flush=True)
    return walls


def figures(home: Path, env: dict) -> dict:
    """MLflow logging of the candidate, snapshot uploads per day, from the runs' metadata."""
    from dagster import AssetKey, DagsterInstance

    if "DAGSTER_PG_URL" in env:
        os.environ["DAGSTER_PG_URL"] = env["DAGSTER_PG_URL"]
    instance = DagsterInstance.from_config(str(home))
    candidate = instance.fetch_materializations(AssetKey("candidate_model"), limit=1).records[0].asset_materialization
    uploads = []
    for asset in ("drift_report", "performance_report"):
        for record in instance.fetch_materializations(AssetKey(asset), limit=50).records:
            value = record.asset_materialization.metadata.get("snapshot_upload_seconds")
            if value is not None:
                uploads.append(value.value)
    steps = {}
    for run in reversed(instance.get_runs()):
        for stat in instance.get_run_step_stats(run.run_id):
            steps[stat.step_key] = round(stat.end_time - stat.start_time, 2)
    return {"step_seconds": steps, "mlflow_logging_and_registration_s": candidate.metadata["mlflow_logging_seconds"].value,
            "snapshot_uploads": len(uploads),
            "snapshot_upload_mean_s": round(statistics.mean(uploads), 3) if uploads else None,
            "snapshot_upload_max_s": round(max(uploads), 3) if uploads else None}


def embedded(root: Path) -> dict:
    home = root / "dagster_home"
    home.mkdir(parents=True)
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING", "FLIGHTS_", "WAREHOUSE_", "DAGSTER_"))}
    env = {**base, "DAGSTER_HOME": str(home), "FLIGHTS_DATA_DIR": str(root / "data")}
    print("embedded default:", flush=True)
    walls = lifecycle(env, root)
    return {"steps_s": walls, "total_s": round(sum(walls.values()), 1), **figures(home, env)}


def team(root: Path) -> dict:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING", "FLIGHTS_", "WAREHOUSE_", "DAGSTER_"))}
    server = _script("deploy/postgres/local_server.sh", base)["FLIGHTS_POSTGRES_URL"]
    broker = _script("deploy/celery/local_broker.sh", base)
    subprocess.run(["bash", str(REPO / "deploy/celery/local_broker.sh"), "flush"], env=base, capture_output=True)  # it has the password
    mlflow_env = {**base, "FLIGHTS_MLFLOW_DIR": str(root / "mlflow"), "FLIGHTS_MLFLOW_PORT": "5071",
                  "FLIGHTS_MLFLOW_BACKEND": _database(server, "mlflow"), "MLFLOW_BIN": str(BIN / "mlflow")}
    evidently_env = {**base, "FLIGHTS_EVIDENTLY_DIR": str(root / "evidently"), "FLIGHTS_EVIDENTLY_PORT": "8071",
                     "EVIDENTLY_BIN": str(BIN / "evidently")}
    services = {**_script("deploy/mlflow/local_server.sh", mlflow_env), **_script("deploy/evidently/local_server.sh", evidently_env),
                **broker, "DAGSTER_PG_URL": _database(server, "dagster"), "WAREHOUSE_URL": _database(server, "warehouse")}
    home = root / "dagster_home"
    home.mkdir(parents=True)
    shutil.copy(REPO / "deploy" / "team" / "dagster.yaml", home / "dagster.yaml")
    workers = []
    try:
        for i in (1, 2):
            data = root / f"worker-{i}"
            data.mkdir()
            log = open(root / f"worker-{i}.log", "w")
            workers.append(subprocess.Popen(
                [str(BIN / "celery"), "-A", "dagster_celery.app", "worker", "-Q", "dagster", "--pool", "solo",
                 "--prefetch-multiplier=1", "-n", f"bench-{i}@%h", "--loglevel", "WARNING"],
                env={**base, **services, "FLIGHTS_DATA_DIR": str(data),
                     "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'deploy' / 'celery'}"},
                cwd=REPO, stdout=log, stderr=log, start_new_session=True))
        time.sleep(3)
        env = {**base, **services, "DAGSTER_HOME": str(home), "FLIGHTS_EXECUTOR": "celery",
               "FLIGHTS_DATA_DIR": str(root / "launcher")}
        print("team profile:", flush=True)
        walls = lifecycle(env, root)
        out = {"steps_s": walls, "total_s": round(sum(walls.values()), 1), **figures(home, env)}
        os.environ.pop("DAGSTER_PG_URL", None)
        return out
    finally:
        for w in workers:
            os.killpg(w.pid, 15)
        for w in workers:
            w.wait(timeout=60)
        _script("deploy/evidently/local_server.sh", evidently_env, "stop")
        _script("deploy/mlflow/local_server.sh", mlflow_env, "stop")


def main() -> None:
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["embedded"] = embedded(Path(tmp) / "embedded")
        results["team"] = team(Path(tmp) / "team")
    results["ratio_team_to_embedded"] = round(results["team"]["total_s"] / results["embedded"]["total_s"], 2)
    results["bars"] = {"ratio <= 1.5": results["ratio_team_to_embedded"] <= 1.5,
                       "mlflow logging through the server <= 2 s": results["team"]["mlflow_logging_and_registration_s"] <= 2,
                       "snapshot upload <= 0.3 s/day": (results["team"]["snapshot_upload_max_s"] or 99) <= 0.3}
    print(json.dumps(results, indent=1))
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    path = out / f"team_{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
