"""Features known at scheduled departure (`flight_features`), point-in-time correct (no Dagster).

For a flight scheduled to leave origin O at local time T, every feature uses only what is
known at T:
- calendar: scheduled hour and minute, weekday, month, day of year, US federal holidays;
- carrier, origin, destination, route and distance (the published schedule);
- the origin's latest weather observation at or before T (up to 3 hours old);
- congestion at O: flights that actually departed in [T-2h, T) (count, mean departure delay,
  share late), flights scheduled in [T-2h, T) that had not departed by T, flights scheduled in
  [T-1h, T);
- delays propagating to the flight: its aircraft's previous departure that day, its carrier at
  O, all New York airports, O since midnight, and arrivals at its destination that landed in
  [T-3h, T) (`propagation_features`).
An event at or after T is never used; the flight's own departure never is.

Labels (`arr_delay`, `is_late`, `cancelled`) are stored beside the features for training and
monitoring, never used as features. A cancelled or diverted flight has no `is_late`.
"""


import functools

import numpy as np
import pandas as pd

from assets.common import data_version
from resources.schemas import content_columns
from resources.schemas import flight_features as flight_features_table

WEATHER_COLUMNS = ["temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure", "visib"]
WEATHER_MAX_AGE = pd.Timedelta(hours=3)
CONGESTION_WINDOW_MIN = 120
SCHEDULED_WINDOW_MIN = 60
DEST_WINDOW_MIN = 180
# Label: a flight is late when it arrives this many minutes (or more) after schedule.
LATE_THRESHOLD_MINUTES = 15
LABEL = "is_late"  # arrived LATE_THRESHOLD_MINUTES or more late: what the model predicts


@functools.lru_cache(maxsize=8)
def _holidays(year: int) -> np.ndarray:
    import holidays

    return np.array(sorted(holidays.US(years=[year - 1, year, year + 1])), dtype="datetime64[D]")


def calendar_features(dates: pd.Series) -> pd.DataFrame:
    d = pd.to_datetime(dates)
    days = d.values.astype("datetime64[D]")
    dist = np.zeros(len(d), dtype=float)
    for year in np.unique(d.dt.year):
        mask = (d.dt.year == year).values
        hol = _holidays(int(year))
        diff = np.abs(days[mask][:, None] - hol[None, :]).astype(int)
        dist[mask] = diff.min(axis=1)
    return pd.DataFrame(
        {
            "day_of_week": d.dt.dayofweek.values,
            "month": d.dt.month.values,
            "day_of_year": d.dt.dayofyear.values,
            "is_holiday": (dist == 0).astype(float),
            "days_to_holiday": np.minimum(dist, 30),
        },
        index=dates.index,
    )


def _minutes(clock: pd.Series) -> pd.Series:
    """HHMM clock time -> minutes after midnight."""
    return (clock // 100) * 60 + clock % 100


def congestion_features(flights: pd.DataFrame) -> pd.DataFrame:
    """Per flight, what its origin looked like at its scheduled departure T (same day only): the
    other flights that left in [T-2h, T), their mean departure delay and late share; how many
    others were scheduled in [T-2h, T) but had not left by T (waiting, or cancelled); how many
    others were scheduled in [T-1h, T).

    In O(n log n) by `_known_before` (the pairwise definition is the tests' reference). A flight
    j scheduled at s_j that leaves at d_j is waiting at T exactly when T is in
    (s_j, min(s_j + 2h, d_j)]: the waiting count is the others whose interval began before T
    less those whose interval ended before T."""
    keys = ["partition_date", "origin"]
    sched = _minutes(flights["sched_dep_time"]).astype(float).values
    delay = flights["dep_delay"].astype(float).values
    dep = sched + delay  # actual departure; NaN if cancelled
    with np.errstate(invalid="ignore"):
        late = np.where(np.isnan(delay), np.nan, (delay >= LATE_THRESHOLD_MINUTES).astype(float))
        ends = np.fmin(sched + CONGESTION_WINDOW_MIN, dep)  # a cancelled flight waits the whole window
        waits = ends > sched  # left at or before its scheduled time: never waiting
    out = np.full((len(flights), 5), np.nan)
    out[:, 0], out[:, 1], _ = _known_before(flights, keys, sched, dep, delay, CONGESTION_WINDOW_MIN)
    _, out[:, 2], _ = _known_before(flights, keys, sched, dep, late, CONGESTION_WINDOW_MIN)
    began, _, _ = _known_before(flights, keys, sched, np.where(waits, sched, np.nan), sched, None)
    ended, _, _ = _known_before(flights, keys, sched, np.where(waits, ends, np.nan), sched, None)
    out[:, 3] = began - ended
    out[:, 4], _, _ = _known_before(flights, keys, sched, sched, sched, SCHEDULED_WINDOW_MIN)
    return pd.DataFrame(
        out,
        columns=[
            "origin_departures_prev_2h",
            "origin_mean_dep_delay_prev_2h",
            "origin_late_share_prev_2h",
            "origin_waiting_flights",
            "origin_scheduled_prev_1h",
        ],
        index=flights.index,
    )


# events are sorted by (group, time) on one numeric key: group * _SPAN + time + _OFFSET
# (times are minutes after the day's midnight: departures and landings within [-180, 6000])
_OFFSET, _SPAN = 10_000.0, 100_000.0


def _known_before(flights: pd.DataFrame, keys: list[str], sched: np.ndarray, event: np.ndarray,
                  value: np.ndarray, window: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per flight, among the *other* flights of its group whose event happened before its
    scheduled departure T (and at or after T - window): how many, the mean of their value, and
    the value of the latest one (ties: the first in row order). An unknown event or value (NaN:
    cancelled, diverted) never counts.

    All groups at once, in O(n log n): the events sorted by (group, time), each flight's window
    found by binary search, sums by prefix sums (delays are whole minutes, so the sums are exact
    and equal those of a pairwise comparison, which the tests keep as the reference)."""
    n = len(flights)
    count, mean, latest = np.zeros(n), np.full(n, np.nan), np.full(n, np.nan)
    group = flights.groupby(keys, sort=False).ngroup().to_numpy().astype(float)
    in_group = group >= 0  # a missing key (no tail number) is in no group
    with np.errstate(invalid="ignore"):
        is_event = in_group & ~np.isnan(event) & ~np.isnan(value)
    events = np.flatnonzero(is_event)
    key = group * _SPAN + event + _OFFSET
    order = events[np.argsort(key[events], kind="stable")]  # ties keep the row order
    sorted_key = key[order]
    prefix = np.concatenate([[0.0], np.cumsum(value[order])])
    rank = np.full(n, -1)
    rank[order] = np.arange(len(order))

    q = np.flatnonzero(in_group)
    t, base = sched[q], group[q] * _SPAN + _OFFSET
    hi = np.searchsorted(sorted_key, base + t, side="left")  # events before T
    lo = np.searchsorted(sorted_key, base + (t - window if window is not None else -_OFFSET), side="left")
    own = event[q]
    with np.errstate(invalid="ignore"):
        self_in = is_event[q] & (own < t) & ((own >= t - window) if window is not None else True)
    n_known = hi - lo - self_in
    total = prefix[hi] - prefix[lo] - np.where(self_in, value[q], 0.0)
    count[q] = n_known
    with np.errstate(invalid="ignore", divide="ignore"):
        mean[q] = np.where(n_known > 0, total / np.maximum(n_known, 1), np.nan)

    # the latest known event: the first (in row order) of the events with the greatest time before
    # T, passing over the flight itself
    def first_of_ties(i):
        return np.searchsorted(sorted_key, sorted_key[np.clip(i, 0, max(len(order) - 1, 0))], side="left")

    if len(order):
        last = hi - 1
        pick = first_of_ties(last)
        own_rank = np.where(self_in, rank[q], -2)
        is_self = own_rank == pick
        next_tie = pick + 1
        tie_continues = (next_tie < hi) & (sorted_key[np.clip(next_tie, 0, len(order) - 1)] == sorted_key[np.clip(pick, 0, len(order) - 1)])
        pick = np.where(is_self & tie_continues, next_tie, pick)
        pick = np.where(is_self & ~tie_continues, first_of_ties(last - 1), pick)
        found = n_known > 0
        latest[q[found]] = value[order[pick[found]]]
    return count, mean, latest


def propagation_features(flights: pd.DataFrame) -> pd.DataFrame:
    """Per flight, delays elsewhere that are known at its scheduled departure T (same day only):

    - its aircraft (`tailnum`): the departure delay of its latest departure from New York that
      left before T, and how many of its departures were scheduled before T; and its previous
      leg (its latest departure from New York scheduled before T): the scheduled gap to T, the
      leg's distance (the round trip it must fly first), how many minutes that leg is overdue
      at T if it has not left yet (0 once it has left), and, once it has landed before T, its
      arrival delay and how long ago it landed;
    - its carrier at its origin: mean delay of the carrier's departures in [T-2h, T);
    - all three New York airports: departures in [T-1h, T) and their mean delay;
    - its origin since midnight: mean delay of every departure before T;
    - its destination: flights from New York that landed there in [T-3h, T) (departure plus air
      time) and their mean arrival delay, which is known once they land.
    """
    sched = _minutes(flights["sched_dep_time"]).astype(float).values
    delay = flights["dep_delay"].astype(float).values
    dep = sched + delay
    landed = dep + flights["air_time"].astype(float).values
    arr_delay = flights["arr_delay"].astype(float).values
    out = pd.DataFrame(index=flights.index)

    has_tail = flights["tailnum"].notna().values
    tails = flights[has_tail]
    _, _, prev = _known_before(tails, ["partition_date", "tailnum"], sched[has_tail], dep[has_tail], delay[has_tail], None)
    legs, _, _ = _known_before(tails, ["partition_date", "tailnum"], sched[has_tail], sched[has_tail], sched[has_tail], None)
    out["tail_prev_dep_delay"] = np.nan
    out.loc[has_tail, "tail_prev_dep_delay"] = prev
    out["tail_legs_before"] = 0.0
    out.loc[has_tail, "tail_legs_before"] = legs
    out = out.join(previous_leg_features(tails, sched[has_tail], dep[has_tail], landed[has_tail], arr_delay[has_tail]),
                   how="left")

    _, out["carrier_origin_mean_dep_delay_prev_2h"], _ = _known_before(
        flights, ["partition_date", "origin", "carrier"], sched, dep, delay, CONGESTION_WINDOW_MIN)
    out["nyc_departures_prev_1h"], out["nyc_mean_dep_delay_prev_1h"], _ = _known_before(
        flights, ["partition_date"], sched, dep, delay, SCHEDULED_WINDOW_MIN)
    _, out["origin_mean_dep_delay_today"], _ = _known_before(flights, ["partition_date", "origin"], sched, dep, delay, None)
    out["dest_landed_prev_3h"], out["dest_mean_arr_delay_prev_3h"], _ = _known_before(
        flights, ["partition_date", "dest"], sched, landed, arr_delay, DEST_WINDOW_MIN)
    return out


def previous_leg_features(tails: pd.DataFrame, sched: np.ndarray, dep: np.ndarray, landed: np.ndarray,
                          arr_delay: np.ndarray) -> pd.DataFrame:
    """Per flight with a tail number, its aircraft's previous leg from New York: the latest of
    the aircraft's other departures that day scheduled before T (ties: the first in row order).
    Whether that leg has left is known at T; when it left, if after T, is not: an overdue leg
    counts the minutes from its schedule to T, a lower bound of its delay. Once the leg has
    landed at its destination (before T), its arrival delay and how long ago it landed are known
    (the aircraft still has to fly back)."""
    position = np.arange(len(tails), dtype=float)
    _, _, prev = _known_before(tails, ["partition_date", "tailnum"], sched, sched, position, None)
    has_prev = ~np.isnan(prev)
    at = prev[has_prev].astype(int)
    t = sched[has_prev]
    out = pd.DataFrame(np.nan, index=tails.index, columns=PREVIOUS_LEG_COLUMNS)
    with np.errstate(invalid="ignore"):
        left_before = dep[at] < t  # NaN (cancelled) has not left
    out.loc[has_prev, "tail_prev_sched_gap"] = t - sched[at]
    out.loc[has_prev, "tail_prev_overdue"] = np.where(left_before, 0.0, t - sched[at])
    out.loc[has_prev, "tail_prev_distance"] = tails["distance"].astype(float).to_numpy()[at]
    with np.errstate(invalid="ignore"):
        landed_before = landed[at] < t  # NaN (cancelled, diverted) has not landed
    out.loc[has_prev, "tail_prev_landed_ago"] = np.where(landed_before, t - landed[at], np.nan)
    out.loc[has_prev, "tail_prev_arr_delay"] = np.where(landed_before, arr_delay[at], np.nan)
    return out


PREVIOUS_LEG_COLUMNS = ["tail_prev_sched_gap", "tail_prev_overdue", "tail_prev_distance", "tail_prev_landed_ago",
                        "tail_prev_arr_delay"]


def weather_at_departure(flights: pd.DataFrame, weather: pd.DataFrame, sched_ts: pd.Series) -> pd.DataFrame:
    """The origin's latest observation at or before the scheduled departure (max 3 h old)."""
    left = pd.DataFrame({"origin": flights["origin"].values, "ts": sched_ts.values, "pos": np.arange(len(flights))})
    if weather.empty:
        obs = pd.DataFrame(columns=["origin", "ts", *WEATHER_COLUMNS])
    else:
        obs = weather[["origin", *WEATHER_COLUMNS]].copy()
        obs["ts"] = pd.to_datetime(weather["partition_date"]) + pd.to_timedelta(weather["hour"].astype(int), unit="h")
    obs["ts"] = pd.to_datetime(obs["ts"]).astype("datetime64[ns]")
    obs["origin"] = obs["origin"].astype(str)
    left["origin"] = left["origin"].astype(str)
    left["ts"] = left["ts"].astype("datetime64[ns]")
    merged = pd.merge_asof(
        left.sort_values("ts"),
        obs.sort_values("ts").astype({c: float for c in WEATHER_COLUMNS}),
        on="ts",
        by="origin",
        direction="backward",
        allow_exact_matches=True,
        tolerance=WEATHER_MAX_AGE,
    ).sort_values("pos")
    out = merged[WEATHER_COLUMNS].reset_index(drop=True)
    out["weather_available"] = merged["temp"].notna().astype(float).values
    out.index = flights.index
    return out


def build_features(flights: pd.DataFrame, weather: pd.DataFrame) -> pd.DataFrame:
    """Feature rows for validated flights (any number of days) and those days' weather."""
    flights = flights.reset_index(drop=True)
    sched_min = _minutes(flights["sched_dep_time"].astype(int))
    sched_ts = pd.to_datetime(flights["partition_date"]) + pd.to_timedelta(sched_min, unit="m")
    out = pd.DataFrame(
        {
            "partition_date": flights["partition_date"],
            "row_number": flights["row_number"].astype(int),
            "flight": flights["flight"].astype(int),
            "tailnum": flights["tailnum"],
            "sched_dep_ts": sched_ts.dt.strftime("%Y-%m-%dT%H:%M:%S"),
            "sched_hour": (sched_min // 60).astype(float),
            "sched_minute": (sched_min % 60).astype(float),
            "distance": flights["distance"].astype(float),
            "carrier": flights["carrier"],
            "origin": flights["origin"],
            "dest": flights["dest"],
            "route": flights["origin"] + "-" + flights["dest"],
        }
    )
    out = out.join(calendar_features(flights["partition_date"]))
    out = out.join(weather_at_departure(flights, weather, sched_ts))
    out = out.join(congestion_features(flights))
    out = out.join(propagation_features(flights))
    arr_delay = flights["arr_delay"].astype(float)
    out["arr_delay"] = arr_delay
    out["cancelled"] = flights["dep_time"].isna().astype(int)
    out["is_late"] = (arr_delay >= LATE_THRESHOLD_MINUTES).astype("Int64").where(arr_delay.notna())
    return out[content_columns(flight_features_table)]


def day_figures(features: pd.DataFrame, partitions: list[str], versions: dict[str, str]) -> dict[str, dict]:
    """Per day: rows, late share, weather coverage, the share of departed flights whose arrival is
    known (the labels: in 2013 never below 95.6 % of a day) and the stored data version."""
    late = features["is_late"].astype(float)
    departed = features["cancelled"] == 0
    by_day = features.assign(is_late=late, departed=departed, arrived=departed & late.notna()).groupby("partition_date")
    stats = by_day.agg(rows=("row_number", "size"), late_share=("is_late", "mean"), coverage=("weather_available", "mean"),
                       departed=("departed", "sum"), arrived=("arrived", "sum"))
    out, no_rows = {}, data_version(features.iloc[0:0])  # the version of a day without rows, once
    for p in partitions:
        rows = int(stats["rows"].get(p, 0))
        out[p] = {
            "rows": rows,
            "late_share": float(stats["late_share"].get(p, float("nan"))),
            "weather_coverage": float(stats["coverage"].get(p, 0.0)) if rows else 0.0,
            "arrivals_share": float(stats["arrived"].get(p, 0) / stats["departed"].get(p, 0)) if stats["departed"].get(p, 0) else 0.0,
            "data_version": versions.get(p, no_rows),
        }
    return out
