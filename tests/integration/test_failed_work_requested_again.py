"""A failed run's work is requested again: a store down for the first attempt, then back.

Dagster skips a run request whose run key it has seen, whatever became of that run; the sensors
and schedules give each attempt its own key (pipelines/orchestration/attempts.py), bounded, and
the last failure's alert says it gives up. Real instance, real runs of the jobs against a
warehouse / MLflow store that cannot be reached, real sensor and schedule evaluations."""

from dagster import AssetMaterialization, DagsterInstance, SkipReason, build_schedule_context

from pipelines.orchestration.attempts import MAX_ATTEMPTS, attempt_note
from pipelines.orchestration.deployment import challenger_sensor
from pipelines.orchestration.schedules import daily_ingestion_schedule
from pipelines.orchestration.sensors import landing_sensor, replay_clock_sensor
from tests.support import tick

DAY = "2013-01-02"
UNREACHABLE = "postgresql+psycopg2://nobody@127.0.0.1:9/store"  # nothing listens on port 9 of loopback


def launch(defs, instance, request, instigator: str):
    """What the daemon does with a run request: a run of its job with its tags and run key."""
    tags = {**request.tags, "dagster/run_key": request.run_key, "dagster/sensor_name": instigator}
    kwargs = {"partition_key": request.partition_key} if request.partition_key else {}
    return defs.resolve_job_def(request.job_name or "ingest_job").execute_in_process(
        instance=instance, tags=tags, run_config=request.run_config or None, raise_on_error=False, **kwargs)


def seen_keys(instance) -> set[str]:
    return {r.tags.get("dagster/run_key") for r in instance.get_runs()}


def schedule_tick(instance):
    result = daily_ingestion_schedule(build_schedule_context(instance=instance))
    return result.skip_message if isinstance(result, SkipReason) else result


def test_a_day_whose_ingestion_failed_is_ingested_once_the_warehouse_is_back(workdir, resources, monkeypatch, landing_day):
    from pipelines.definitions import build_definitions
    from resources.warehouse import Warehouse

    monkeypatch.setenv("FLIGHTS_DATA_DIR", str(workdir["data"]))
    monkeypatch.setenv("FLIGHTS_SOURCE", "landing")
    monkeypatch.setenv("FLIGHTS_LANDING_DIR", str(workdir["landing"]))
    monkeypatch.setenv("FLIGHTS_REPLAY_START", DAY)
    monkeypatch.setenv("FLIGHTS_REPLAY_END", DAY)
    instance = DagsterInstance.from_config(str(workdir["home"]))
    down = build_definitions({**resources, "warehouse": Warehouse(url=UNREACHABLE)})
    up = build_definitions(resources)

    # the landing sensor: a new day while the warehouse is down
    _, cursor, _ = tick(landing_sensor, instance, None)
    landing_day(DAY)
    settling, cursor, _ = tick(landing_sensor, instance, cursor)
    assert settling == []  # first seen: taken once settled, at the next tick
    [first], cursor, _ = tick(landing_sensor, instance, cursor)
    assert not launch(down, instance, first, "landing_sensor").success
    [failed] = instance.get_runs(limit=1)
    assert attempt_note(instance, failed) == f"attempt 1 of {MAX_ATTEMPTS}: requested again at the next tick of landing_sensor"
    # the files are unchanged: the next tick asks again, under a key the daemon has not seen
    [again], cursor, _ = tick(landing_sensor, instance, cursor)
    assert again.partition_key == DAY and again.run_key not in seen_keys(instance)
    assert again.tags["attempt.number"] == "2"

    # the replay clock: the same day failed once, asked again under a new key
    [replay] = tick(replay_clock_sensor, instance, None)[0]
    assert replay.partition_key == DAY and not launch(down, instance, replay, "replay_clock_sensor").success
    [replay_again] = tick(replay_clock_sensor, instance, None)[0]
    assert replay_again.partition_key == DAY and replay_again.run_key not in seen_keys(instance)

    # the daily schedule: the day fails every time; bounded, then it gives up (the alert says so)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        request = schedule_tick(instance)
        assert request.run_key not in seen_keys(instance) and request.tags["attempt.number"] == str(attempt)
        assert not launch(down, instance, request, "daily_ingestion_schedule").success
    last = instance.get_runs(limit=1)[0]
    assert attempt_note(instance, last) == (f"attempt {MAX_ATTEMPTS} of {MAX_ATTEMPTS}, giving up: run it again by hand "
                                            "once the cause is fixed")
    assert f"ingest-{DAY}: gave up after {MAX_ATTEMPTS} failed attempts" in schedule_tick(instance)

    # the warehouse is back: the landing sensor's second attempt ingests the day; nothing is asked again
    assert launch(up, instance, again, "landing_sensor").success
    assert tick(landing_sensor, instance, cursor)[0] == []
    assert "reached its end day" in tick(replay_clock_sensor, instance, None)[2]
    assert schedule_tick(instance) == "every day of the replay has been ingested"


def test_a_failed_shadow_decision_is_requested_again_and_a_refused_one_is_not(workdir, resources, monkeypatch):
    from pipelines.definitions import build_definitions
    from resources.registry import ModelRegistry

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # a tracking server that is down: said at once
    instance = DagsterInstance.from_config(str(workdir["home"]))
    instance.report_runless_asset_event(AssetMaterialization("champion_model", metadata={
        "event": "challenger", "challenger": "2", "promotion_mode": "shadow", "champion": "flight_delay v1"}))
    instance.report_runless_asset_event(AssetMaterialization("performance_report", partition=DAY, metadata={
        "shadow_challenger": "2", "shadow_verdict": "promote", "shadow_reason": "better on 3 labelled days"}))
    registry_down = build_definitions({**resources, "model_registry": ModelRegistry(
        tracking_uri="http://127.0.0.1:9", artifact_root=str(workdir["data"] / "mlartifacts"))})

    [decision], _, _ = tick(challenger_sensor, instance, None)
    assert decision.job_name == "approve_challenger_job" and decision.run_key == "shadow:2"
    assert not launch(registry_down, instance, decision, "challenger_sensor").success  # MLflow's store is down
    [again], _, _ = tick(challenger_sensor, instance, None)
    assert again.run_key == "shadow:2:attempt-2" and again.run_key not in seen_keys(instance)

    # MLflow is back, but no version 2 waits there: refused (a DataFailure), which retrying cannot fix
    assert not launch(build_definitions(resources), instance, again, "challenger_sensor").success
    requests, _, skip = tick(challenger_sensor, instance, None)
    assert requests == [] and "shadow:2: run" in skip and "failed on what retrying cannot fix" in skip
    assert "giving up" in attempt_note(instance, instance.get_runs(limit=1)[0])
