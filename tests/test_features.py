"""Features: point-in-time correctness and the feature functions on real days."""

import numpy as np
import pandas as pd
import pytest

from assets.features import build_features, calendar_features, congestion_features
from resources.schemas import FEATURE_COLUMNS_CATEGORICAL, FEATURE_COLUMNS_NUMERIC
from tests.conftest import typed_day

DAY = "2013-07-12"
FEATURES = FEATURE_COLUMNS_NUMERIC + FEATURE_COLUMNS_CATEGORICAL


@pytest.fixture(scope="module")
def day_data():
    return typed_day("flights", DAY), typed_day("weather", DAY)


def _minutes(clock):
    return (clock // 100) * 60 + clock % 100


def _perturb_after(flights, weather, t_min, rng):
    """Change everything that happens at or after local minute t_min of the day."""
    f = flights.copy()
    sched = _minutes(f["sched_dep_time"])
    dep = sched + f["dep_delay"]
    later = ~(dep < t_min)  # departs at/after T, or never departs (cancelled)
    # new departure delays that keep those departures at or after T; some become cancellations
    new_delay = (t_min - sched).clip(lower=0) + rng.integers(0, 300, len(f))
    f.loc[later, "dep_delay"] = new_delay[later].astype(float)
    cancel = later & (rng.random(len(f)) < 0.2)
    f.loc[cancel, ["dep_delay", "dep_time"]] = np.nan
    # arrivals, air time and labels are after departure: randomize for every flight
    f["arr_delay"] = rng.integers(-60, 400, len(f)).astype(float)
    f["air_time"] = rng.integers(20, 600, len(f)).astype(float)
    f["arr_time"] = rng.integers(0, 2359, len(f)).astype(float)
    # flights scheduled after T that also depart after T may as well not exist
    gone = later & (sched > t_min) & (rng.random(len(f)) < 0.5)
    f = f.loc[~gone]
    w = weather.copy()
    obs_min = w["hour"] * 60
    after = obs_min > t_min
    for col in ["temp", "dewp", "humid", "wind_speed", "precip", "pressure", "visib"]:
        w.loc[after, col] = rng.uniform(0, 100, after.sum())
    return f, w


@pytest.mark.parametrize("seed", range(6))
def test_changing_what_happens_after_departure_never_changes_a_flights_features(day_data, seed):
    flights, weather = day_data
    rng = np.random.default_rng(seed)
    base = build_features(flights, weather).set_index("row_number")
    # several target flights spread over the day
    for row in rng.choice(flights["row_number"].to_numpy(), size=5, replace=False):
        target = flights.loc[flights["row_number"] == row].iloc[0]
        t_min = int(_minutes(target["sched_dep_time"]))
        f2, w2 = _perturb_after(flights, weather, t_min, rng)
        # the target's own outcome (after its scheduled departure) changes too
        f2.loc[f2["row_number"] == row, ["dep_delay", "arr_delay"]] = [333.0, 444.0]
        again = build_features(f2, w2).set_index("row_number")
        pd.testing.assert_series_equal(
            base.loc[row, FEATURES], again.loc[row, FEATURES], check_names=False
        )


def test_the_perturbation_does_change_later_flights(day_data):
    """Guard: the property test above would be vacuous if the perturbation changed nothing."""
    flights, weather = day_data
    rng = np.random.default_rng(0)
    f2, w2 = _perturb_after(flights, weather, 8 * 60, rng)
    base = build_features(flights, weather).set_index("row_number")
    again = build_features(f2, w2).set_index("row_number")
    late = again.index[again["sched_hour"] >= 12]
    changed = (base.loc[late, "origin_mean_dep_delay_prev_2h"] != again.loc[late, "origin_mean_dep_delay_prev_2h"]).mean()
    assert changed > 0.5


def test_no_post_departure_information_in_features():
    forbidden = {"dep_time", "dep_delay", "arr_time", "arr_delay", "air_time", "is_late", "cancelled"}
    assert not forbidden & set(FEATURES)


def test_congestion_counts_on_a_hand_made_day():
    f = pd.DataFrame(
        {
            "partition_date": ["2013-01-02"] * 4,
            "origin": ["EWR"] * 4,
            # scheduled 08:00, 08:30, 09:00, 09:10
            "sched_dep_time": [800, 830, 900, 910],
            # departed 08:10 (+10), 09:20 (+50: still waiting at 09:00), 09:05 (+5), cancelled
            "dep_delay": [10.0, 50.0, 5.0, np.nan],
        }
    )
    c = congestion_features(f)
    # flight at 09:00: only the 08:10 departure happened before; 08:30 is still waiting
    assert c.loc[2].tolist()[:2] == [1.0, 10.0]
    assert c.loc[2, "origin_waiting_flights"] == 1
    assert c.loc[2, "origin_scheduled_prev_1h"] == 2  # 08:00 and 08:30
    # flight at 09:10: 08:10 and 09:05 departed; 08:30 waits
    assert c.loc[3, "origin_departures_prev_2h"] == 2 and c.loc[3, "origin_mean_dep_delay_prev_2h"] == 7.5
    assert c.loc[3, "origin_waiting_flights"] == 1
    # first flight of the day: nothing before it
    assert c.loc[0, "origin_departures_prev_2h"] == 0 and np.isnan(c.loc[0, "origin_mean_dep_delay_prev_2h"])


def test_calendar_features_know_us_holidays():
    c = calendar_features(pd.Series(["2013-07-04", "2013-07-06", "2013-12-25"]))
    assert c["is_holiday"].tolist() == [1.0, 0.0, 1.0]
    assert c["days_to_holiday"].tolist() == [0, 2, 0]
    assert c["day_of_week"].tolist() == [3, 5, 2]


def test_weather_is_the_latest_observation_at_or_before_departure(day_data):
    flights, weather = day_data
    feats = build_features(flights, weather)
    row = feats.iloc[100]
    hour = int(row["sched_dep_ts"][11:13])
    obs = weather[(weather["origin"] == row["origin"]) & (weather["hour"] <= hour)].sort_values("hour").iloc[-1]
    assert row["temp"] == obs["temp"] and row["weather_available"] == 1.0


def test_a_day_without_weather_gives_features_without_weather(day_data):
    flights, weather = day_data
    feats = build_features(flights, weather.iloc[0:0])
    assert len(feats) == len(flights) and feats["weather_available"].eq(0).all() and feats["temp"].isna().all()
