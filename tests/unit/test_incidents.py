"""The drills' incident library does to a real day what its name says, and keeps the values a row
suite checks inside their types and ranges where it promises to (pipelines/commands/drills/incidents.py)."""

from __future__ import annotations

import pandas as pd
import pytest

from pipelines.commands.drills import incidents
from tests.support import replay_day

SUMMER, WINTER = "2013-06-11", "2013-01-15"


def _day(day: str) -> dict[str, pd.DataFrame]:
    return {"flights": replay_day("flights", day), "weather": replay_day("weather", day)}


def _numbers(frame: pd.DataFrame, column: str) -> pd.Series:
    return pd.to_numeric(frame[column], errors="coerce")


def test_celsius_keeps_the_suite_range_and_moves_every_reading_by_the_unit_change():
    day = _day(SUMMER)
    hot = incidents.celsius_temperature(day)
    for column in ("temp", "dewp"):
        before, after = _numbers(day["weather"], column), _numbers(hot["weather"], column)
        assert ((after - (before - 32) * 5 / 9).abs().dropna() < 0.006).all()
        assert after.between(-40, 130).all() and after.isna().equals(before.isna())
    assert _numbers(hot["weather"], "temp").mean() < _numbers(day["weather"], "temp").mean() - 30  # ~75 °F -> ~24 °C
    assert hot["flights"] is day["flights"]


def test_one_airports_weather_is_gone_and_the_others_untouched():
    day = _day(SUMMER)
    missing = incidents.airport_weather_missing(day, "LGA")["weather"]
    assert set(missing["origin"]) == {"EWR", "JFK"}
    assert len(missing) == (day["weather"]["origin"] != "LGA").sum() > 0


def test_a_renamed_carrier_code_replaces_every_flight_of_it():
    day = _day(SUMMER)
    renamed = incidents.carrier_renamed(day)["flights"]
    assert (renamed["carrier"] == "XE").sum() == (day["flights"]["carrier"] == "EV").sum() > 0
    assert "EV" not in set(renamed["carrier"])


def test_a_day_delivered_twice_holds_each_flight_twice():
    day = _day(SUMMER)
    twice = incidents.delivered_twice(day)["flights"]
    key = ["carrier", "flight", "origin", "sched_dep_time"]
    assert len(twice) == 2 * len(day["flights"])
    assert (twice.groupby(key).size() == day["flights"].groupby(key).size() * 2).all()


@pytest.mark.parametrize(("day", "offset"), [(SUMMER, 4), (WINTER, 5)])
def test_utc_clock_times_move_by_the_new_york_offset_and_stay_valid_clock_times(day, offset):
    frames = _day(day)
    shifted = incidents.utc_clock_times(frames)["flights"]
    for column in ("sched_dep_time", "dep_time", "arr_time", "sched_arr_time"):
        clock = _numbers(shifted, column).dropna()
        assert (clock // 100).between(0, 23).all() and (clock % 100).between(0, 59).all(), column
    before, after = _numbers(frames["flights"], "sched_dep_time"), _numbers(shifted, "sched_dep_time")
    assert ((after // 100 - before // 100) % 24 == offset).all() and (after % 100 == before % 100).all()
    assert ((_numbers(shifted, "hour") - _numbers(frames["flights"], "hour")) % 24 == offset).all()
    # the UTC instant itself (time_hour) is what it was: the clock fields now disagree with it
    assert shifted["time_hour"].equals(frames["flights"]["time_hour"])


def test_missing_arrivals_leave_no_label_and_the_departures_as_they_were():
    day = _day(SUMMER)
    late = incidents.arrivals_missing(day)["flights"]
    assert late[["arr_time", "arr_delay", "air_time"]].isna().all().all()
    assert late["dep_time"].equals(day["flights"]["dep_time"]) and len(late) == len(day["flights"])
    assert incidents.FEED_INCIDENTS["arrivals_missing"].days == 2


def test_a_stale_request_asks_for_the_same_flight_a_week_earlier():
    request = {"carrier": "UA", "flight": 1545, "origin": "EWR", "dest": "IAH", "scheduled_departure": "2013-06-11T05:15"}
    stale = incidents.stale_served_features(request)
    assert stale == {**request, "scheduled_departure": "2013-06-04T05:15"}


def test_the_library_names_each_feed_incident_of_the_issue_and_real_shifts_of_2013():
    assert set(incidents.FEED_INCIDENTS) == {"celsius_temperature", "airport_weather_missing", "carrier_renamed",
                                             "delivered_twice", "utc_clock_times", "arrivals_missing"}
    for shift in incidents.WORLD_SHIFTS:
        assert "2013-01-01" <= shift.first_day <= shift.last_day <= "2013-12-31"
