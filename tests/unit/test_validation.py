"""Row-level validation with the real Great Expectations suite on real days, altered."""

import json

import pandas as pd
import pytest

from assets.validation.expectations import flights_row_suite, weather_row_suite
from assets.validation.logic import (
    QuarantineReason,
    day_summary,
    parse_reasons,
    prepare_for_validation,
    row_reasons,
    split_rows,
)
from resources.data_quality import GreatExpectations
from resources.schemas import FLIGHTS, WEATHER
from tests.support import replay_day

DAY = "2013-06-10"


def _as_raw(frame: pd.DataFrame, day: str, source="f.csv") -> pd.DataFrame:
    raw = frame.reindex(columns=FLIGHTS.column_names if "carrier" in frame else WEATHER.column_names).copy()
    raw.insert(0, "row_number", range(1, len(raw) + 1))
    raw.insert(0, "source_file", source)
    raw.insert(0, "partition_date", day)
    raw["extra_columns"] = None
    return raw


@pytest.fixture(scope="module")
def gx_validator(tmp_path_factory):
    return GreatExpectations()


def _validate(gx_validator, raw, contract, suite):
    frame = prepare_for_validation(raw, contract)
    run = gx_validator.validate(frame, f"test_{contract.name}", suite)
    return frame, run, row_reasons(run.outcomes, frame)


def test_a_real_day_passes_whole(gx_validator):
    raw = _as_raw(replay_day("flights", DAY), DAY)
    frame, run, reasons = _validate(gx_validator, raw, FLIGHTS, flights_row_suite)
    assert run.success and len(reasons) == 0
    valid, quarantined = split_rows(raw, frame, reasons, FLIGHTS)
    assert len(valid) == len(raw) and len(quarantined) == 0
    assert str(valid["dep_time"].dtype) == "Int64" and valid["distance"].dtype == float
    assert run.page_html.lstrip().lower().startswith("<!doctype html") and "flights_rows" in run.page_html


BAD_ROWS = {
    # row position -> (column, bad text, reason fragment)
    0: ("distance", "-12", "distance: outside [1, 6000]"),
    1: ("sched_dep_time", "2460", "sched_dep_time: not a clock time"),
    2: ("dest", "XYZ", "dest: unknown airport code"),
    3: ("carrier", "ZZ", "carrier: unknown carrier code"),
    4: ("dep_delay", "twelve", "dep_delay: not a number"),
    5: ("origin", "BOS", "origin: unknown origin airport"),
    6: ("flight", "12.5", "flight: not an integer"),
    7: ("carrier", None, "carrier: missing value"),
    8: ("day", "11", "year/month/day: date differs from the partition"),
    9: ("minute", "75", "minute: outside [0, 59]"),
}


def test_each_bad_row_is_quarantined_with_its_reason_and_the_rest_is_valid(gx_validator):
    flights = replay_day("flights", DAY)
    for pos, (col, value, _) in BAD_ROWS.items():
        flights.loc[pos, col] = value
    flights = pd.concat([flights, flights.iloc[[20, 21]]], ignore_index=True)  # two duplicated rows
    raw = _as_raw(flights, DAY)
    frame, run, reasons = _validate(gx_validator, raw, FLIGHTS, flights_row_suite)
    assert not run.success
    valid, quarantined = split_rows(raw, frame, reasons, FLIGHTS)
    assert len(valid) + len(quarantined) == len(raw)
    assert len(quarantined) == len(BAD_ROWS) + 2
    by_row = {r.row_number: parse_reasons(r.reasons) for r in quarantined.itertuples()}
    for pos, (col, value, fragment) in BAD_ROWS.items():
        got = by_row[pos + 1]
        assert any(fragment in r.render() for r in got), (pos, got)
        if value is not None and col != "day":
            # structured: the column, the rule, and the text that arrived
            assert any(r.column == col and r.value == value for r in got), got
    # the first copy of a duplicated row stays valid, the later copy is quarantined
    assert 21 not in by_row and len(raw) - 1 in by_row and len(raw) in by_row
    assert all("duplicate" in r[0].rule for k, r in by_row.items() if k > len(raw) - 2)
    # original values are kept verbatim
    first = json.loads(quarantined.iloc[0]["original_row"])
    assert first["distance"] == "-12"
    summary = day_summary([DAY], raw, reasons, frame)
    assert summary.loc[0, "rows_in"] == summary.loc[0, "rows_valid"] + summary.loc[0, "rows_quarantined"]


def test_weather_impossible_values_and_duplicates(gx_validator):
    weather = replay_day("weather", "2013-11-03")  # the day of the DST change holds a duplicated hour
    weather.loc[0, "wind_speed"] = "1048.36"
    raw = _as_raw(weather, "2013-11-03")
    frame, run, reasons = _validate(gx_validator, raw, WEATHER, weather_row_suite)
    text = [r.render() for rs in reasons for r in rs]
    assert any(r.startswith("wind_speed: outside") for r in text)
    assert any("duplicate" in r for r in text)
    valid, quarantined = split_rows(raw, frame, reasons, WEATHER)
    assert len(valid) + len(quarantined) == len(raw)


def test_a_reason_renders_in_one_place_and_reads_back_from_the_warehouse():
    reason = QuarantineReason("distance", "outside [1, 6000]", "-40")
    assert reason.render() == "distance: outside [1, 6000] (got '-40')" and reason.kind == "distance: outside [1, 6000]"
    assert parse_reasons(json.dumps([reason.as_json()])) == [reason]
    # rows quarantined before reasons were structured still read
    assert parse_reasons(json.dumps(["distance: outside [1, 6000] (got '-40')"])) == [reason]
    assert parse_reasons(json.dumps(["carrier: missing value"])) == [QuarantineReason("carrier", "missing value")]
