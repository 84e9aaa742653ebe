"""Ask by flight (`POST /predict`): what a caller knows of a flight in, the model's features
computed here, by the code of `flight_features` (assets/features/logic.py `build_features`), from
what the warehouse knows of the flight's day.

A request is one flight:

    {"carrier": "UA", "flight": 1545, "origin": "EWR", "dest": "IAH",
     "scheduled_departure": "2013-01-01T05:15", "tailnum": "N14228", "distance": 1400}

(`tailnum` and `distance` optional; the scheduled departure is the origin's local date and time).

The day's context is the day's current versions of `validated_flights` and `validated_weather`.
It is loaded once per version and kept (`DayContexts`, at most MAX_DAYS days); a thread looks
every FLIGHTS_SERVE_POLL_SECONDS whether a kept day has a new version (a landing file received
again as the day grows, a day validated again) and loads it before it answers from it: no
warehouse query on the request path once a day is loaded. At load every flight of the day gets
its features by `build_features` on the whole day, exactly as `flight_features` builds them: each
feature uses only what happened before the flight's own scheduled departure, which is the day
"cut at that instant" (in the replay the ingested day; live, the day's version as received so far).

Three answers, each saying what it knows (`in_schedule`, `features_as_of`, `day_data_version`):
- the flight is in the day's schedule (carrier, flight, origin, dest and scheduled departure all
  match a validated flight): its features as the day's `flight_features` row has them;
- the day is known but the schedule has no such flight: the flight is added to the day's flights
  and `build_features` runs on them (the slow path, ~the cost of one day's features);
- the warehouse has nothing of the day yet: the features of the flight alone (calendar, route,
  the "unknown" values of weather, congestion and delays), `features_as_of` null.

While a challenger is in promotion mode `canary`, a flight whose key hashes below
FLIGHTS_CANARY_SHARE (`FlightKey.canary_bucket`) is answered by it; the answer names the version
and `served_as` (champion or canary).

`features_as_of` is the instant the features know events up to: the scheduled departure, or the
time the day's version was written if earlier (a live day received before the flight leaves).
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from served_model.features import FEATURE_COLUMNS

log = logging.getLogger("flights.serving")
MAX_DAYS = 16  # days kept loaded per worker (a day: ~1,000 flights and their features, ~1 MB)
LOCAL = ZoneInfo("America/New_York")  # the schedule's and the weather's clock
_TAILNUM = re.compile(r"^[A-Z0-9]{1,8}$")
_WHEN = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}):(\d{2})(:00)?$")


class BadFlight(ValueError):
    """A request that names no flight this server can answer for: 400, naming the field."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


@dataclass(frozen=True)
class FlightKey:
    """A flight as a caller names it; with the day, the schedule's key (the flights contract's
    carrier, flight, origin and scheduled departure) plus its destination."""

    day: str
    carrier: str
    flight: int
    origin: str
    dest: str
    sched_dep_time: int  # HHMM, the schedule's own form
    tailnum: str | None = None
    distance: float | None = None

    @property
    def schedule_key(self) -> tuple:
        return self.carrier, self.flight, self.origin, self.dest, self.sched_dep_time

    @property
    def scheduled_departure(self) -> str:
        return f"{self.day}T{self.sched_dep_time // 100:02d}:{self.sched_dep_time % 100:02d}:00"

    @property
    def canary_bucket(self) -> float:
        """Where the flight falls in [0, 1) for the canary split: a hash of its key (carrier,
        flight, origin, scheduled departure), the same in every worker and every run, so one
        flight is always answered by one version."""
        key = f"{self.carrier}|{self.flight}|{self.origin}|{self.scheduled_departure}".encode()
        return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / 2.0**64

    def as_dict(self) -> dict:
        return {"carrier": self.carrier, "flight": self.flight, "origin": self.origin, "dest": self.dest,
                "scheduled_departure": self.scheduled_departure[:16], "tailnum": self.tailnum, "distance": self.distance}


@dataclass(frozen=True)
class Codes:
    """What a flight may name: the partitions' days, New York origins, known airports and carriers."""

    first_day: str
    last_day: str
    origins: frozenset[str]
    airports: frozenset[str]
    carriers: frozenset[str]

    @classmethod
    def reference(cls) -> Codes:
        from assets.common import partition_days
        from assets.validation.expectations import NYC_AIRPORTS, reference_codes

        airports, carriers = reference_codes()
        days = partition_days()
        return cls(days[0], days[-1], frozenset(NYC_AIRPORTS), frozenset(airports), frozenset(carriers))


def _code(request: dict, name: str, allowed: frozenset[str], what: str) -> str:
    value = request.get(name)
    if not isinstance(value, str) or not value:
        raise BadFlight(name, f"required, {what} as text")
    if value not in allowed:
        raise BadFlight(name, f"unknown {what} {value[:12]!r}")
    return value


def parse_flight(request: object, codes: Codes) -> FlightKey:
    """The flight a request names; `BadFlight` (the field and why) for anything else."""
    if not isinstance(request, dict):
        raise BadFlight("body", "a JSON object naming one flight (carrier, flight, origin, dest, scheduled_departure)")
    extra = sorted(set(request) - {"carrier", "flight", "origin", "dest", "scheduled_departure", "tailnum", "distance"})
    if extra:
        raise BadFlight(str(extra[0])[:40], "not a field of a flight (carrier, flight, origin, dest, "
                        "scheduled_departure, tailnum, distance)")
    carrier = _code(request, "carrier", codes.carriers, "carrier code")
    origin = _code(request, "origin", codes.origins, "New York origin (EWR, JFK or LGA)")
    dest = _code(request, "dest", codes.airports, "airport code")
    number = request.get("flight")
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 9999:
        raise BadFlight("flight", "required, the flight number as an integer 1..9999")
    when = request.get("scheduled_departure")
    match = _WHEN.match(when) if isinstance(when, str) else None
    if match is None:
        raise BadFlight("scheduled_departure", "required, the local date and time as YYYY-MM-DDTHH:MM")
    day, hour, minute = match.group(1), int(match.group(2)), int(match.group(3))
    try:
        date.fromisoformat(day)
    except ValueError:
        raise BadFlight("scheduled_departure", f"not a date: {day}") from None
    if hour > 23 or minute > 59:
        raise BadFlight("scheduled_departure", f"not a time of day: {match.group(2)}:{match.group(3)}")
    if not codes.first_day <= day <= codes.last_day:
        raise BadFlight("scheduled_departure", f"{day} is outside the partitions ({codes.first_day} .. {codes.last_day})")
    tailnum = request.get("tailnum")
    if tailnum is not None and (not isinstance(tailnum, str) or not _TAILNUM.match(tailnum)):
        raise BadFlight("tailnum", "an aircraft registration: 1 to 8 capital letters and digits")
    distance = request.get("distance")
    if distance is not None and (isinstance(distance, bool) or not isinstance(distance, int | float)
                                 or not math.isfinite(distance) or not 0 < distance < 10_000):
        raise BadFlight("distance", "miles, a number between 0 and 10000")
    return FlightKey(day, carrier, number, origin, dest, hour * 100 + minute, tailnum,
                     None if distance is None else float(distance))


@dataclass
class DayContext:
    """What the warehouse knows of one day, loaded once per version: its validated flights and
    weather, and the features of each flight of its schedule."""

    day: str
    versions: dict[str, str | None]  # validated_flights / validated_weather -> the version id read
    written_at: str | None  # when the day's flights version was written (UTC, ISO)
    flights: pd.DataFrame
    weather: pd.DataFrame
    features: dict[tuple, dict] = field(default_factory=dict)  # schedule key -> feature values

    @property
    def known(self) -> bool:
        return self.versions.get("validated_flights") is not None


def _feature_values(frame: pd.DataFrame) -> list[dict]:
    """Feature rows as plain values, unknown ones None (what a JSON request of them holds)."""
    out = frame[FEATURE_COLUMNS].astype(object).where(frame[FEATURE_COLUMNS].notna(), None)
    return out.to_dict("records")


def _schedule_keys(flights: pd.DataFrame) -> list[tuple]:
    return list(zip(flights["carrier"], flights["flight"].astype(int), flights["origin"], flights["dest"],
                    flights["sched_dep_time"].astype(int)))


def build_day(day: str, flights: pd.DataFrame, weather: pd.DataFrame, versions: dict, written_at: str | None) -> DayContext:
    from assets.features.logic import build_features

    context = DayContext(day, versions, written_at, flights.reset_index(drop=True), weather.reset_index(drop=True))
    if len(context.flights):
        features = build_features(context.flights, context.weather)
        keys = _schedule_keys(context.flights)
        for key, values in zip(keys, _feature_values(features)):
            context.features.setdefault(key, values)  # a key twice in a day: the first, like row order
    return context


def _as_of(key: FlightKey, written_at: str | None) -> str:
    departure = key.scheduled_departure
    if written_at is None:
        return departure
    written = datetime.fromisoformat(written_at).astimezone(LOCAL).replace(tzinfo=None).isoformat(timespec="seconds")
    return min(departure, written)


def _unscheduled_row(context: DayContext, key: FlightKey) -> pd.DataFrame:
    """The flight as a validated flight that has not left: what the schedule would say of it."""
    distance = key.distance
    if distance is None and len(context.flights):
        same = context.flights[(context.flights["origin"] == key.origin) & (context.flights["dest"] == key.dest)]
        distance = float(same["distance"].iloc[0]) if len(same) else None
    row = dict.fromkeys(context.flights.columns, np.nan)  # unknown: it has not left (dep_*, arr_*, air_time)
    row.update(partition_date=key.day, row_number=-1, carrier=key.carrier, flight=key.flight, origin=key.origin,
               dest=key.dest, sched_dep_time=key.sched_dep_time, tailnum=key.tailnum,
               distance=np.nan if distance is None else distance,
               **dict.fromkeys(("dep_time", "dep_delay", "arr_time", "arr_delay", "air_time"), np.nan))
    return pd.DataFrame([row])


def features_for(context: DayContext, key: FlightKey) -> tuple[dict, dict]:
    """The flight's feature values and what they were computed from (the answer's fields)."""
    known = context.features.get(key.schedule_key) if context.known else None
    in_schedule = known is not None
    if known is None:
        from assets.features.logic import build_features

        row = _unscheduled_row(context, key)
        flights = pd.concat([context.flights, row], ignore_index=True) if len(context.flights) else row
        for name in ("flight", "sched_dep_time", "row_number"):
            flights[name] = flights[name].astype(int)
        known = _feature_values(build_features(flights, context.weather).iloc[[-1]])[0]
    return known, {
        "in_schedule": in_schedule,
        "features_as_of": _as_of(key, context.written_at) if context.known else None,
        "day_data_version": context.versions if context.known else None,
    }


class DayContexts:
    """The loaded days of one worker, by day; each refreshed when its versions change."""

    def __init__(self, warehouse, poll_seconds: float, max_days: int = MAX_DAYS):
        self.warehouse, self.poll_seconds, self.max_days = warehouse, poll_seconds, max_days
        self.days: OrderedDict[str, DayContext] = OrderedDict()
        self.loads = 0
        self.last_check_error: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="day-contexts", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _current(self, days: list[str]) -> dict[str, dict[str, str | None]]:
        flights = self.warehouse.current_versions("validated_flights", days)
        weather = self.warehouse.current_versions("validated_weather", days)
        return {d: {"validated_flights": flights.get(d, (None,))[0], "validated_weather": weather.get(d, (None,))[0]}
                for d in days}

    def load(self, day: str) -> DayContext:
        """Read the day's current versions from the warehouse and build its context."""
        from resources.schemas import validated_tables

        flights, read = self.warehouse.read_current_versions(validated_tables["flights"], [day])
        if read.get(day) is None:  # the day not ingested yet
            return DayContext(day, {"validated_flights": None, "validated_weather": None}, None, pd.DataFrame(),
                              pd.DataFrame())
        weather, weather_read = self.warehouse.read_current_versions(validated_tables["weather"], [day])
        versions = {"validated_flights": read.get(day), "validated_weather": weather_read.get(day)}
        catalog = self.warehouse.versions(["validated_flights"], [day], [versions["validated_flights"]])
        written_at = str(catalog["created_at"].iloc[0]) if len(catalog) else None
        self.loads += 1
        return build_day(day, flights, weather, versions, written_at)

    def get(self, day: str) -> DayContext:
        context = self.days.get(day)
        if context is None:
            context = self.load(day)
            with self._lock:
                self.days[day] = context
                while len(self.days) > self.max_days:
                    self.days.popitem(last=False)
        return context

    def check_once(self) -> None:
        days = list(self.days)
        if not days:
            return
        current = self._current(days)
        for day in days:
            context = self.days.get(day)
            if context is not None and current[day] != context.versions:
                fresh = self.load(day)
                with self._lock:
                    if day in self.days:
                        self.days[day] = fresh
                log.info(f"day {day}: new version {fresh.versions} loaded for /predict")

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.check_once()
                self.last_check_error = None
            except Exception as exc:  # the warehouse unreachable: answer from what is loaded
                self.last_check_error = f"{type(exc).__name__}: {str(exc)[:300]}"
                log.warning(f"day versions not checked: {self.last_check_error}")

    def status(self) -> dict:
        return {"days": {d: c.versions for d, c in self.days.items()}, "loads": self.loads,
                "last_check_error": self.last_check_error}


class FlightDesk:
    """`POST /predict` of one worker: the flight a request names, its day's context, its
    features, the served version's probability, and what the answer was computed from."""

    def __init__(self, contexts: DayContexts, codes: Codes | None = None, canary_share: float = 0.1):
        self.contexts, self.codes, self.canary_share = contexts, codes or Codes.reference(), canary_share

    def start(self) -> None:
        self.contexts.start()

    def stop(self) -> None:
        self.contexts.stop()

    def status(self) -> dict:
        return self.contexts.status()

    def answer(self, request: object, served, canary=None) -> dict:
        """The answer to a request (a dict for JSON): by the champion `served`, or by the `canary`
        (a challenger in promotion mode canary) for the flights in its share. BadFlight for a
        request naming no flight, DayUnavailable when the day is not loaded and the warehouse
        cannot be read."""
        key = parse_flight(request, self.codes)
        if canary is not None and canary.version != served.version and key.canary_bucket < self.canary_share:
            served, role = canary, "canary"
        else:
            role = "champion"
        try:
            context = self.contexts.get(key.day)
        except Exception as exc:  # the warehouse down on a day not loaded yet
            raise DayUnavailable(f"the flights of {key.day} cannot be read now ({type(exc).__name__}: "
                                 f"{str(exc)[:200]}); try again") from exc
        features, known = features_for(context, key)
        probability = float(served.scorer.predict_proba([features])[0][1])
        return {"probability_late": probability, "model_version": served.version, "served_as": role, "flight": key.as_dict(),
                **known, "features": features}


class DayUnavailable(RuntimeError):
    """The day's context cannot be loaded now (the warehouse unreachable): 503, try again."""
