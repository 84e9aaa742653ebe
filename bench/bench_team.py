"""Benchmark of the team profile against the embedded default: the same lifecycle, the same
commands, one run each; figures printed and written to bench/results/.

The lifecycle, each step a `dagster` CLI command (process start included):
  1. ingest + validate + features for 2013-01-01 … 2013-03-07 (one run);
  2. retrain_job on the 60 days ending 2013-03-01 (deploys v1);
  3. predictions, drift_report and performance_report for 2013-03-02 … 2013-03-07 (one run).

Embedded default: SQLite warehouse, Dagster instance and MLflow store, local Evidently workspace,
steps in the run's process. Team profile: the containers of deploy/team/compose.yaml, brought up by
`deploy/team/team.sh up` (a compose project of its own): PostgreSQL (instance and warehouse), the
MLflow tracking server (basic-auth, artifacts proxied), the Evidently UI service, and the steps on
the two Celery worker containers over Redis; the CLI runs on this host against the published
loopback ports (`source team.env`), as an operator's or CI's would. Printed: wall time per step
and in all, the ratio (bar: 1.5), MLflow logging + registration of the candidate through the server
(bar: 2 s), the snapshot upload per day to the Evidently service (bar: 0.3 s), the images' sizes
and build times, and the time `team.sh up` took.

    python bench/bench_team.py [--fresh-images]   # --fresh-images: remove the flights-* images first
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


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _images(fresh: bool) -> dict:
    """The images as `make team-up` builds them: sizes and build times (from nothing with --fresh-images)."""
    if fresh:  # the project's images and their build layers; the base and Debian's system last (the others grew on them)
        listed = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", "--filter", "reference=flights-*"],
                                capture_output=True, text=True).stdout.split()
        for name in sorted(listed, key=lambda n: (n.startswith("flights-debian"), n.startswith("flights-base"))):
            subprocess.run(["docker", "rmi", name], capture_output=True)
    started = time.perf_counter()
    proc = subprocess.run(["bash", str(REPO / "deploy/docker/build.sh")], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"deploy/docker/build.sh failed:\n{proc.stderr[-3000:]}")
    print(proc.stderr, end="", flush=True)
    built = {}
    for line in proc.stderr.splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[-1] == "s" and parts[-3] == "in" and parts[2] == "MB":
            built[parts[0]] = {"size_mb": int(parts[1]), "build_s": int(parts[-2])}
    return {"images": built, "images_from_nothing": fresh, "images_wall_s": round(time.perf_counter() - started, 1)}


def team(root: Path, fresh_images: bool) -> dict:
    """The team profile as containers (deploy/team/team.sh up, a project of its own), the lifecycle
    run by this checkout's CLI against it (`source team.env`): steps on the worker containers."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "FLIGHTS_", "WAREHOUSE_", "DAGSTER_"))}
    images = _images(fresh_images)
    settings = {"FLIGHTS_TEAM_DIR": str(root / "state"), "FLIGHTS_TEAM_PROJECT": f"flightsbench{uuid.uuid4().hex[:6]}",
                **{f"FLIGHTS_TEAM_{name}_PORT": str(_free_port())
                   for name in ("WEB", "READONLY", "MLFLOW", "EVIDENTLY", "SERVE", "POSTGRES", "REDIS")}}
    started = time.perf_counter()
    up = subprocess.run(["bash", str(REPO / "deploy/team/team.sh"), "up"], env={**base, **settings}, capture_output=True, text=True)
    up_s = round(time.perf_counter() - started, 1)
    try:
        if up.returncode:
            raise SystemExit(f"team-up failed:\n{up.stderr[-3000:]}")
        print(f"team profile (containers up in {up_s} s):", flush=True)
        sourced = subprocess.run(["bash", "-c", f"source {root / 'state' / 'team.env'} && env -0"], capture_output=True,
                                 check=True, env={"PATH": os.environ["PATH"]}).stdout.decode()
        env = {**base, **settings, **dict(item.split("=", 1) for item in sourced.split("\0") if "=" in item)}
        walls = lifecycle(env, root)
        out = {"steps_s": walls, "total_s": round(sum(walls.values()), 1), **figures(REPO / "deploy" / "team", env),
               "team_up_s": up_s, **images}
        os.environ.pop("DAGSTER_PG_URL", None)
        return out
    finally:
        subprocess.run(["bash", str(REPO / "deploy/team/team.sh"), "down"], env={**base, **settings, "FLIGHTS_TEAM_PURGE": "1"},
                       capture_output=True)


def main() -> None:
    fresh = "--fresh-images" in sys.argv[1:]
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["embedded"] = embedded(Path(tmp) / "embedded")
        results["team"] = team(Path(tmp) / "team", fresh)
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
