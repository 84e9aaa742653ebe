"""End to end through the CLI, as a team's CI calls it (`dg launch`, and the older `dagster asset
materialize`, which still works): a temporary DAGSTER_HOME, warehouse and GX project; then the
tables, the checks' results and the metadata in the instance; the operator commands by their
entry points."""

import os
import subprocess
import sys
from pathlib import Path

from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, DagsterRunStatus
from sqlalchemy import create_engine, text

from tests.support import check_evaluations, dagster_cli_env, replay_day

BIN = Path(sys.executable).parent
DAYS = ("2013-02-07", "2013-02-08")  # 2013-02-08: the blizzard, many cancellations


def _cli(workdir, *args, extra_env=None):
    env = dagster_cli_env(workdir, VIRTUAL_ENV=sys.prefix, **(extra_env or {}))
    return subprocess.run([str(BIN / args[0]), *args[1:]], env=env, capture_output=True, text=True, timeout=600,
                          cwd=Path(__file__).resolve().parents[2])


def _launch(workdir, partition_args, extra_env=None):
    """`dg launch` over the project's [tool.dg] (pyproject.toml): no module named on the command line."""
    return _cli(workdir, "dg", "launch", "--assets", "*flight_features", *partition_args, extra_env=extra_env)


def _materialize(workdir, partition_args, extra_env=None):
    """The command Dagster 1.13 calls superseded by `dg launch`, kept working for those who call it."""
    return _cli(workdir, "dagster", "asset", "materialize", "-m", "pipelines.definitions",
                "--select", "*flight_features", *partition_args, extra_env=extra_env)


def test_cli_backfill_of_two_days_is_one_run_with_tables_checks_and_metadata(workdir):
    proc = _launch(workdir, ["--partition-range", f"{DAYS[0]}...{DAYS[1]}"])
    assert proc.returncode == 0, proc.stderr[-3000:]

    instance = DagsterInstance.from_config(str(workdir["home"]))
    runs = instance.get_runs()
    assert len(runs) == 1 and runs[0].status == DagsterRunStatus.SUCCESS

    engine = create_engine(workdir["warehouse_url"])
    with engine.connect() as conn:
        def count(table, day, extra=""):
            return conn.execute(text(f"SELECT count(*) FROM {table} WHERE partition_date = :d {extra}"), {"d": day}).scalar()

        for day in DAYS:
            n_in = len(replay_day("flights", day))
            assert count("raw_flights", day) == n_in
            assert count("validated_flights", day) + count("quarantine", day, "AND dataset = 'flights'") == n_in
            assert count("flight_features", day) == count("validated_flights", day)
            assert count("raw_weather", day) == len(replay_day("weather", day))

    for asset in ("raw_flights", "validated_flights", "flight_features"):
        for day in DAYS:
            records = instance.fetch_materializations(
                AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[day]), limit=1
            ).records
            assert records, (asset, day)
            meta = records[0].asset_materialization.metadata
            assert "data_version" in meta
            if asset == "validated_flights":
                assert meta["rows_in"].value == meta["rows_valid"].value + meta["rows_quarantined"].value
                assert meta["rows_in"].value == len(replay_day("flights", day))
            if asset == "raw_flights":
                assert meta["source"].value == "replay"
                assert meta["source_file"].value.endswith("flights.csv.zip")

    for asset, check in [
        ("raw_flights", "batch_is_readable_and_complete"),
        ("validated_flights", "bad_row_share_within_limit"),
        ("validated_flights", "rows_in_equal_valid_plus_quarantined"),
    ]:
        history = check_evaluations(instance, asset, check)
        # one evaluation per day of the run, each passed
        assert sorted(h[0] for h in history) == list(DAYS), (asset, check)
        assert {h[1] for h in history} == {True}, history
        assert {h[2] for h in history} == {runs[0].run_id}

    # the GX Data Docs page of the validation is in the MLflow artifact store, the metadata links to it
    from resources.registry import DATA_VALIDATION_EXPERIMENT, ModelRegistry
    from resources.settings import settings

    meta = instance.fetch_materializations(AssetKey("validated_flights"), limit=1).records[0].asset_materialization.metadata
    url = meta["data_docs"].value
    assert url.startswith("http://127.0.0.1:5000/#/experiments/") and url.endswith("/artifacts/data_docs/validated_flights.html")
    registry = ModelRegistry(tracking_uri=settings(dagster_cli_env(workdir)).mlflow_tracking_uri)
    run = registry.client.get_run(url.split("/runs/")[1].split("/")[0])
    assert run.info.experiment_id == registry.experiment_id(DATA_VALIDATION_EXPERIMENT) == url.split("/experiments/")[1].split("/")[0]
    assert (run.data.tags["dagster.run_id"], run.data.tags["partition.first"], run.data.tags["partition.last"]) == (
        runs[0].run_id, DAYS[0], DAYS[1])
    page = registry.mlflow_module().artifacts.load_text(f"runs:/{run.info.run_id}/data_docs/validated_flights.html")
    assert "flights_rows" in page and "Unsuccessful Expectations" in page  # the Data Docs validation page

    summary = subprocess.run(  # the operator command by its entry point
        [str(BIN / "flights-summary"), *DAYS], capture_output=True, text=True,
        env={**os.environ, "WAREHOUSE_URL": workdir["warehouse_url"], "FLIGHTS_DATA_DIR": str(workdir["data"])},
    )
    assert summary.returncode == 0, summary.stderr
    assert "flights: " in summary.stdout and " valid + " in summary.stdout
    refused = subprocess.run([str(BIN / "flights-summary"), "2013-02-30"], capture_output=True, text=True,
                             env={**os.environ, "WAREHOUSE_URL": workdir["warehouse_url"]})
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "2013-02-30" in refused.stderr, refused.stderr


def test_cli_broken_landing_file_fails_clearly_and_writes_nothing(workdir, landing_day):
    flights = replay_day("flights", DAYS[0]).rename(columns={"sched_dep_time": "scheduled"})
    path = landing_day(DAYS[0], flights=flights)
    proc = _materialize(workdir, ["--partition", DAYS[0]], extra_env={"FLIGHTS_SOURCE": "landing"})
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert f"partition {DAYS[0]}, file {path}, column 'sched_dep_time': required column missing" in out
    engine = create_engine(workdir["warehouse_url"])
    with engine.connect() as conn:
        for table in ("raw_flights", "validated_flights", "quarantine", "flight_features"):
            assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() == 0, table
    instance = DagsterInstance.from_config(str(workdir["home"]))
    history = check_evaluations(instance, "raw_flights", "batch_is_readable_and_complete")
    assert [(h[0], h[1]) for h in history] == [(DAYS[0], False)]
