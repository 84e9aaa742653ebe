"""Feed incidents of the drills' library (pipelines/commands/drills/incidents.py) through the real
ingestion (in-process Dagster, real GX, SQLite): each kind is noticed on the day it arrives, by a
named check, and a broken day is not what the next steps build on.

Covered here: clock times in another time zone, a day delivered twice, a renamed carrier code (the
day is blocked by its bad rows: nothing of it is written past raw); temperatures in °C (the day is
blocked by `temperature_continuous`); one airport's weather missing (the day's `weather_coverage`
check warns).
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
