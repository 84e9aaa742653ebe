"""Feed incidents of the drills' library (pipelines/commands/drills/incidents.py) through the real
ingestion (in-process Dagster, real GX, SQLite): each kind is noticed on the day it arrives, by a
named check, and a broken day is not what the next steps build on.

Covered here: clock times in another time zone, a day delivered twice, a renamed carrier code (the
day is blocked by its bad rows: nothing of it is written past raw); temperatures in °C (the day is
blocked by `temperature_continuous`); one airport's weather missing (the day's `weather_coverage`
check warns); arrivals missing (the day's `arrivals_reported` check warns). A day flagged by a
failed feed check is left out of the training window until a person releases it
(`release_day_job`, recorded) or a new version of it passes.
"""

from __future__ import annotations

import pytest
from dagster import DagsterInstance, materialize

from pipelines.commands.drills import incidents
from pipelines.definitions import defs
from resources.schemas import flight_features, raw_tables, validated_tables
from tests.support import replay_day

ASSETS = ["raw_flights", "raw_weather", "validated_flights", "validated_weather", "flight_features"]
DAY, BEFORE = "2013-03-04", "2013-03-03"


def _ingest(resources, day: str = DAY, instance=None):
    return materialize([defs.get_assets_def(k) for k in ASSETS], partition_key=day, resources=resources,
                       instance=instance or DagsterInstance.ephemeral(), raise_on_error=False)


def _land(landing_day, incident: str) -> str:
    frames = incidents.FEED_INCIDENTS[incident].inject({"flights": replay_day("flights", DAY), "weather": replay_day("weather", DAY)})
    return str(landing_day(DAY, flights=frames["flights"], weather=frames["weather"]))


def _failure(result) -> str:
    return "\n".join(e.event_specific_data.error.message for e in result.all_events if e.event_type_value == "STEP_FAILURE")


@pytest.mark.parametrize(("incident", "reason"), [
    ("utc_clock_times", "hour: the local hour is not time_hour's hour in New York time"),
    ("delivered_twice", "duplicate: (carrier, flight, origin, sched_dep_time"),
    ("carrier_renamed", "carrier: unknown carrier code"),
])
def test_a_broken_flights_feed_blocks_its_day_naming_the_check_the_file_and_the_reason(resources, landing_day, incident, reason):
    path = _land(landing_day, incident)
    result = _ingest(resources)
    assert not result.success
    message = _failure(result)
    assert f"partition {DAY}" in message and path in message and reason in message, message
    failed = {e.check_name for e in result.get_asset_check_evaluations() if not e.passed}
    assert "bad_row_share_within_limit" in failed, failed
    warehouse = resources["warehouse"]
    # nothing lost: every row that came is in raw_flights; nothing of the day past it
    assert warehouse.count_by_partition(raw_tables["flights"], [DAY])[DAY] > 0
    assert warehouse.count_by_partition(validated_tables["flights"], [DAY]).get(DAY, 0) == 0
    assert warehouse.count_by_partition(flight_features, [DAY]).get(DAY, 0) == 0


def test_the_real_day_passes_the_new_clock_expectation(resources, landing_day):
    """The control: the same day as delivered, every row's local hour agrees with its time_hour."""
    landing_day(DAY)
    result = _ingest(resources)
    assert result.success, _failure(result)
    assert {e.check_name: e.passed for e in result.get_asset_check_evaluations()}["weather_coverage"] is True
    warehouse = resources["warehouse"]
    assert warehouse.count_by_partition(validated_tables["flights"], [DAY])[DAY] == len(replay_day("flights", DAY))


def test_one_airports_weather_missing_warns_on_the_days_coverage(resources, landing_day):
    _land(landing_day, "airport_weather_missing")
    result = _ingest(resources)
    assert result.success, _failure(result)
    (coverage,) = [e for e in result.get_asset_check_evaluations() if e.check_name == "weather_coverage"]
    assert not coverage.passed and coverage.severity.value == "WARN"
    assert coverage.metadata["weather_coverage"].value < 0.75  # LGA's flights (about a third) have no weather


def test_a_weather_feed_in_celsius_blocks_its_day_at_the_temperature_check(resources, landing_day):
    """The day before arrives as it was; the next day's temperatures in °C pass every row's range,
    and the day fails `temperature_continuous`, naming the file, the column and the jump."""
    instance = DagsterInstance.ephemeral()
    landing_day(BEFORE)
    first = _ingest(resources, BEFORE, instance)
    assert first.success, _failure(first)
    assert {e.check_name: e.passed for e in first.get_asset_check_evaluations()}["temperature_continuous"] is True
    frames = incidents.celsius_temperature({"flights": replay_day("flights", DAY), "weather": replay_day("weather", DAY)})
    landing_day(DAY, flights=frames["flights"], weather=frames["weather"])
    result = _ingest(resources, DAY, instance)
    assert not result.success
    message = _failure(result)
    weather_file = str(resources["source"].landing_dir) + f"/weather_{DAY}.csv"
    assert f"partition {DAY}, file {weather_file}, column 'temp'" in message and "°C instead of °F" in message, message
    (check,) = [e for e in result.get_asset_check_evaluations() if e.check_name == "temperature_continuous"]
    assert not check.passed and check.severity.value == "ERROR" and abs(check.metadata["largest_jump_f"].value) > 18
    warehouse = resources["warehouse"]
    assert warehouse.count_by_partition(validated_tables["weather"], [DAY]).get(DAY, 0) == 0
    assert warehouse.count_by_partition(flight_features, [DAY]).get(DAY, 0) == 0
    assert warehouse.count_by_partition(raw_tables["weather"], [DAY])[DAY] == len(frames["weather"])  # nothing lost


def test_the_real_days_temperatures_are_continuous(resources, landing_day):
    """The control: the same two days as delivered pass, with the largest jump the check saw."""
    instance = DagsterInstance.ephemeral()
    for day in (BEFORE, DAY):
        landing_day(day)
        result = _ingest(resources, day, instance)
        assert result.success, _failure(result)
    (check,) = [e for e in result.get_asset_check_evaluations() if e.check_name == "temperature_continuous"]
    assert check.passed and check.metadata["airports_judged"].value == 3 and abs(check.metadata["largest_jump_f"].value) < 18


def test_arrivals_missing_warns_that_the_labels_are_late_and_flags_the_day(resources, landing_day):
    _land(landing_day, "arrivals_missing")
    result = _ingest(resources)
    assert result.success, _failure(result)
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    arrivals = checks["arrivals_reported"]
    assert not arrivals.passed and arrivals.severity.value == "WARN" and arrivals.metadata["arrivals_share"].value == 0.0
    assert checks["weather_coverage"].passed  # the weather came: only the labels are late
    (flag,) = resources["warehouse"].open_flags([DAY])
    assert (flag.check, flag.asset, flag.severity) == ("arrivals_reported", "flight_features", "WARN")
    assert f"partition {DAY}, column arr_delay" in flag.detail and "labels are late" in flag.detail


def test_the_real_days_arrivals_are_reported(resources, landing_day):
    landing_day(DAY)
    result = _ingest(resources)
    (arrivals,) = [e for e in result.get_asset_check_evaluations() if e.check_name == "arrivals_reported"]
    assert arrivals.passed and arrivals.metadata["arrivals_share"].value > 0.95
    assert resources["warehouse"].open_flags() == []


def test_a_flagged_day_is_not_trained_on_until_a_person_releases_it(resources, landing_day):
    """Four real days and one with an airport's weather missing: the training window leaves the
    flagged day out and says why; release_day_job (who, why) takes it back, recorded on the flag
    and as an observation of the day; a blocked day cannot be released."""
    from pipelines.definitions import build_definitions

    instance = DagsterInstance.ephemeral()
    days = ["2013-03-01", "2013-03-02", "2013-03-03", "2013-03-04", "2013-03-05"]
    broken = "2013-03-04"
    for day in days:
        frames = {"flights": replay_day("flights", day), "weather": replay_day("weather", day)}
        if day == broken:
            frames = incidents.airport_weather_missing(frames)
        landing_day(day, flights=frames["flights"], weather=frames["weather"])
        assert _ingest(resources, day, instance).success
    warehouse = resources["warehouse"]
    assert [(f.day, f.check) for f in warehouse.open_flags()] == [(broken, "weather_coverage")]

    window = {"ops": {"training_set": {"config": {"end_day": days[-1], "window_days": 5, "min_rows": 500}}}}
    training = materialize([defs.get_assets_def("training_set")], resources=resources, instance=instance, run_config=window)
    meta = training.asset_materializations_for_node("training_set")[0].metadata
    assert meta["days_left_out"].value == 1
    assert meta["partitions"].value == {"flight_features": [d for d in days if d != broken]}
    (row,) = meta["flagged_days"].value.records
    assert row.data["day"] == broken and row.data["check"] == "weather_coverage" and "weather source" in row.data["detail"]
    recorded = resources["model_registry"].training_window(meta["mlflow_run_id"].value)
    assert broken not in recorded.days and len(recorded.days) == 4

    job = build_definitions(resources).resolve_job_def("release_day_job")
    refused = job.execute_in_process(instance=instance, raise_on_error=False, run_config={"ops": {"release_day": {"config": {
        "day": days[0], "reason": "nothing to release", "released_by": "ana"}}}})
    assert not refused.success and "no open broken-feed flag" in _failure(refused)
    released = job.execute_in_process(instance=instance, run_config={"ops": {"release_day": {"config": {
        "day": broken, "reason": "LGA's station was down that day; flights flew", "released_by": "ana"}}}})
    (observation,) = [e.event_specific_data.asset_observation for e in released.all_events
                      if e.event_type_value == "ASSET_OBSERVATION"]
    assert observation.partition == broken and observation.metadata["released_by"].value == "ana"
    assert warehouse.open_flags() == []
    audit = warehouse.flag_history([broken]).iloc[0]
    assert audit["released_by"] == "ana" and "station was down" in audit["release_reason"] and audit["released_at"]

    again = materialize([defs.get_assets_def("training_set")], resources=resources, instance=instance, run_config=window)
    meta = again.asset_materializations_for_node("training_set")[0].metadata
    assert meta["days_left_out"].value == 0 and meta["partitions"].value == {"flight_features": days}


def test_a_blocked_day_is_flagged_cleared_by_a_good_delivery_and_cannot_be_released(resources, landing_day):
    from pipelines.definitions import build_definitions

    instance = DagsterInstance.ephemeral()
    _land(landing_day, "delivered_twice")
    assert not _ingest(resources, DAY, instance).success
    (flag,) = resources["warehouse"].open_flags([DAY])
    assert (flag.check, flag.asset, flag.severity) == ("bad_row_share_within_limit", "validated_flights", "ERROR")
    refused = build_definitions(resources).resolve_job_def("release_day_job").execute_in_process(
        instance=instance, raise_on_error=False,
        run_config={"ops": {"release_day": {"config": {"day": DAY, "reason": "looks fine", "released_by": "ana"}}}})
    assert not refused.success and "deliver it again" in _failure(refused)
    landing_day(DAY)  # the feed delivered again, once
    assert _ingest(resources, DAY, instance).success
    assert resources["warehouse"].open_flags() == []
    assert resources["warehouse"].flag_history([DAY]).iloc[0]["cleared_at"]
