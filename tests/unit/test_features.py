"""Features: point-in-time correctness and the feature functions on real days."""

import numpy as np
import pandas as pd
import pytest

from assets.features.logic import build_features, calendar_features, congestion_features, propagation_features
from served_model.features import FEATURE_COLUMNS_CATEGORICAL, FEATURE_COLUMNS_NUMERIC
from tests.support import typed_day

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
    # an arrival is known once it happens: flights that landed before T keep theirs; for every
    # other flight, new air times that land at or after T, and new arrival delays and times
    landed_before = (dep + f["air_time"]) < t_min  # NaN (cancelled, diverted) compares False
    new_dep = sched + f["dep_delay"]
    new_air = (t_min - new_dep).clip(lower=0).fillna(0) + rng.integers(20, 600, len(f))
    f.loc[~landed_before, "air_time"] = new_air[~landed_before].astype(float)
    f.loc[~landed_before, "arr_delay"] = rng.integers(-60, 400, len(f))[~landed_before].astype(float)
    f.loc[~landed_before, "arr_time"] = rng.integers(0, 2359, len(f))[~landed_before].astype(float)
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
    for column in ("origin_mean_dep_delay_prev_2h", "dest_mean_arr_delay_prev_3h", "nyc_mean_dep_delay_prev_1h"):
        changed = (base.loc[late, column] != again.loc[late, column]).mean()
        assert changed > 0.5, column


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


def test_propagated_delays_on_a_hand_made_day():
    f = pd.DataFrame(
        {
            "partition_date": ["2013-01-02"] * 5,
            "origin": ["EWR", "EWR", "JFK", "EWR", "LGA"],
            "carrier": ["UA", "UA", "B6", "UA", "UA"],
            "dest": ["ORD", "BOS", "ORD", "ORD", "ORD"],
            "tailnum": ["N1", "N2", "N3", "N1", None],
            # scheduled 07:00, 07:30, 08:00, 09:00, 09:30
            "sched_dep_time": [700, 730, 800, 900, 930],
            # departed 07:20, 07:30, 08:40, 09:05, cancelled
            "dep_delay": [20.0, 0.0, 40.0, 5.0, np.nan],
            # landed at ORD 08:50 (+25), at BOS 08:30, at ORD 10:50, at ORD 11:05
            "air_time": [90.0, 60.0, 130.0, 120.0, np.nan],
            "arr_delay": [25.0, -5.0, 50.0, 10.0, np.nan],
            "distance": [719.0, 200.0, 740.0, 719.0, 733.0],
        }
    )
    p = propagation_features(f)
    # 09:00, aircraft N1: its previous leg (07:00, 719 miles) left before 09:00, 120 min earlier
    assert p.loc[3, ["tail_prev_sched_gap", "tail_prev_overdue", "tail_prev_distance"]].tolist() == [120.0, 0.0, 719.0]
    # ... and landed at ORD at 08:50, 25 minutes late: 10 minutes before 09:00
    assert p.loc[3, ["tail_prev_landed_ago", "tail_prev_arr_delay"]].tolist() == [10.0, 25.0]
    assert p.loc[[0, 1, 2, 4], "tail_prev_sched_gap"].isna().all()  # no earlier leg, or no tail number
    # the same aircraft's 07:00 leg still on the ground at 09:00 (it leaves at 09:20): overdue 120 minutes
    held = propagation_features(f.assign(dep_delay=[140.0, 0.0, 40.0, 5.0, np.nan]))
    assert held.loc[3, ["tail_prev_sched_gap", "tail_prev_overdue"]].tolist() == [120.0, 120.0]
    assert np.isnan(held.loc[3, "tail_prev_dep_delay"])  # its delay is not known yet
    assert held.loc[3, ["tail_prev_landed_ago", "tail_prev_arr_delay"]].isna().all()  # nor its landing
    # left at 07:20 but lands at 09:20 (air time 120): the landing is not known at 09:00
    airborne = propagation_features(f.assign(air_time=[120.0, 60.0, 130.0, 120.0, np.nan]))
    assert airborne.loc[3, "tail_prev_overdue"] == 0.0 and airborne.loc[3, ["tail_prev_landed_ago", "tail_prev_arr_delay"]].isna().all()
    # 09:00, aircraft N1: its 07:00 departure left 20 min late, one leg before
    assert p.loc[3, "tail_prev_dep_delay"] == 20.0 and p.loc[3, "tail_legs_before"] == 1
    assert np.isnan(p.loc[0, "tail_prev_dep_delay"]) and p.loc[0, "tail_legs_before"] == 0
    # no tail number: nothing known about the aircraft
    assert np.isnan(p.loc[4, "tail_prev_dep_delay"]) and p.loc[4, "tail_legs_before"] == 0
    # 09:00 at ORD: only the 07:20 departure had landed (08:50, +25); the 08:40 one lands at 10:50
    assert p.loc[3, "dest_landed_prev_3h"] == 1 and p.loc[3, "dest_mean_arr_delay_prev_3h"] == 25.0
    # UA at EWR in [07:00, 09:00): 07:20 (+20) and 07:30 (0)
    assert p.loc[3, "carrier_origin_mean_dep_delay_prev_2h"] == 10.0
    # all of New York in [08:00, 09:00): the 08:40 departure (+40)
    assert p.loc[3, "nyc_departures_prev_1h"] == 1 and p.loc[3, "nyc_mean_dep_delay_prev_1h"] == 40.0
    # EWR since midnight, before 09:30 is not EWR: LGA has no departure before 09:30
    assert p.loc[3, "origin_mean_dep_delay_today"] == 10.0 and np.isnan(p.loc[4, "origin_mean_dep_delay_today"])


def _known_before_pairwise(flights, keys, sched, event, value, window):
    """The definition of `_known_before`, flight against flight (the former implementation)."""
    count = np.zeros(len(flights))
    mean, latest = np.full(len(flights), np.nan), np.full(len(flights), np.nan)
    for pos in flights.groupby(keys, sort=False).indices.values():
        t, e, v = sched[pos][:, None], event[pos][None, :], value[pos]
        with np.errstate(invalid="ignore"):
            known = (e < t) & ~np.isnan(v)[None, :]
            if window is not None:
                known &= e >= t - window
        np.fill_diagonal(known, False)
        n = known.sum(axis=1)
        count[pos] = n
        with np.errstate(invalid="ignore", divide="ignore"):
            mean[pos] = np.where(n > 0, np.where(known, v[None, :], 0.0).sum(axis=1) / n, np.nan)
        newest = np.where(known, e, -np.inf).argmax(axis=1)
        latest[pos] = np.where(n > 0, v[newest], np.nan)
    return count, mean, latest


@pytest.mark.parametrize("seed", range(3))
def test_known_before_by_sorting_equals_the_pairwise_definition(seed):
    """Ties in time, early departures (the flight's own event before its T), unknown events and
    values, flights in no group: counts, means and the latest value equal the pairwise ones."""
    from assets.features.logic import _known_before

    rng = np.random.default_rng(seed)
    for _ in range(100):
        m = int(rng.integers(1, 40))
        flights = pd.DataFrame({"partition_date": rng.choice(["d1", "d2"], m), "tailnum": rng.choice(["N1", "N2", None], m)})
        sched = rng.integers(0, 30, m).astype(float)
        event = sched + rng.integers(-5, 5, m)
        event[rng.random(m) < 0.2] = np.nan
        value = rng.integers(-5, 50, m).astype(float)
        value[rng.random(m) < 0.2] = np.nan
        for keys in (["partition_date"], ["partition_date", "tailnum"]):
            for window in (None, 3.0, 10.0):
                got = _known_before(flights, keys, sched, event, value, window)
                want = _known_before_pairwise(flights, keys, sched, event, value, window)
                for g, w in zip(got, want, strict=True):
                    np.testing.assert_array_equal(g, w)


def test_propagation_features_equal_the_pairwise_definition_on_a_real_day(day_data, monkeypatch):
    import assets.features.logic as logic

    flights, _ = day_data
    fast = propagation_features(flights)
    monkeypatch.setattr(logic, "_known_before", _known_before_pairwise)
    pd.testing.assert_frame_equal(fast, logic.propagation_features(flights))


def _congestion_pairwise(flights):
    """The definition of `congestion_features`, flight against flight (the former implementation)."""
    from assets.features import logic

    sched = _minutes(flights["sched_dep_time"]).astype(float).values
    dep = sched + flights["dep_delay"].astype(float).values  # actual departure; NaN if cancelled
    delay = flights["dep_delay"].astype(float).values
    out = np.full((len(flights), 5), np.nan)
    groups = flights.groupby(["partition_date", "origin"], sort=False).indices
    for positions in groups.values():
        s, d, dl = sched[positions], dep[positions], delay[positions]
        t = s[:, None]
        not_self = ~np.eye(len(positions), dtype=bool)
        with np.errstate(invalid="ignore"):
            departed = (d[None, :] < t) & not_self  # NaN (cancelled) compares False
            recent = departed & (d[None, :] >= t - logic.CONGESTION_WINDOW_MIN)
        n_recent = recent.sum(axis=1)
        delay_sum = np.where(recent, dl[None, :], 0.0).sum(axis=1)
        late = (recent & (dl[None, :] >= logic.LATE_THRESHOLD_MINUTES)).sum(axis=1)
        sched_recent = (s[None, :] >= t - logic.CONGESTION_WINDOW_MIN) & (s[None, :] < t) & not_self
        sched_hour = (s[None, :] >= t - logic.SCHEDULED_WINDOW_MIN) & (s[None, :] < t) & not_self
        with np.errstate(invalid="ignore", divide="ignore"):
            out[positions, 0] = n_recent
            out[positions, 1] = np.where(n_recent > 0, delay_sum / n_recent, np.nan)
            out[positions, 2] = np.where(n_recent > 0, late / n_recent, np.nan)
        out[positions, 3] = (sched_recent & ~departed).sum(axis=1)
        out[positions, 4] = sched_hour.sum(axis=1)
    return pd.DataFrame(out, columns=list(congestion_features(flights.head(0)).columns), index=flights.index)


def test_congestion_by_sorting_equals_the_pairwise_definition_on_a_real_day(day_data):
    flights, _ = day_data
    pd.testing.assert_frame_equal(congestion_features(flights), _congestion_pairwise(flights), check_exact=True)


@pytest.mark.parametrize("seed", range(3))
def test_congestion_by_sorting_equals_the_pairwise_definition(seed):
    """Crowded random days: ties in time, early departures, departures after the window,
    cancellations, several days and origins."""
    rng = np.random.default_rng(seed)
    for _ in range(30):
        n = int(rng.integers(1, 80))
        clock = rng.integers(0, 24 * 60, n)
        delay = rng.choice([-10.0, -1.0, 0.0, 5.0, 14.0, 15.0, 60.0, 119.0, 120.0, 121.0, 400.0, np.nan], n)
        flights = pd.DataFrame({"partition_date": rng.choice(["2013-01-01", "2013-01-02"], n),
                                "origin": rng.choice(["EWR", "JFK", "LGA"], n),
                                "sched_dep_time": (clock // 60) * 100 + clock % 60, "dep_delay": delay})
        pd.testing.assert_frame_equal(congestion_features(flights), _congestion_pairwise(flights), check_exact=True)
