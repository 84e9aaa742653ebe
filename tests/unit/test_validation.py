"""Row-level validation with the real Great Expectations suite on real days, altered."""

import json
from collections import Counter

import pandas as pd
import pytest

from assets.validation.expectations import (
    BLOCKING,
    QUARANTINE,
    WARNING,
    batch_suite,
    flights_row_suite,
    quarantine_share_suite,
    weather_row_suite,
)
from assets.validation.logic import (
    QuarantineReason,
    RowFindings,
    Violation,
    accounting,
    blocks,
    day_summary,
    find_rows,
    judge_shares,
    parse_reasons,
    prepare_for_validation,
    row_reasons,
    split_rows,
)
from resources.data_quality import ExpectationOutcome, GreatExpectations
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


# --- the verdicts: an expectation's GX severity decides what its failure does ----------------------


def test_the_suites_express_what_a_failure_does_as_gx_severity():
    from great_expectations.expectations.metadata_types import FailureSeverity

    assert (BLOCKING, WARNING, QUARANTINE) == tuple(s.value for s in (
        FailureSeverity.CRITICAL, FailureSeverity.WARNING, FailureSeverity.INFO))

    def severities(suite):
        return {e.configuration.severity.value for e in suite.expectations}

    # row suites quarantine rows or warn: a CRITICAL expectation there would neither quarantine nor block
    assert severities(flights_row_suite()) == {QUARANTINE, WARNING}
    assert severities(weather_row_suite()) == {QUARANTINE}
    assert severities(batch_suite(FLIGHTS)) == severities(quarantine_share_suite("flights", 0.1)) == {BLOCKING}
    # meta keeps only what GX has no field for: the column and the reason of the quarantine row
    assert {frozenset(e.meta) for e in flights_row_suite().expectations} == {frozenset({"column", "reason"})}


def _with_severity(make_suite, severity, *, where=lambda e: True):
    """`make_suite` with the severity of its expectations matching `where` changed (and its name, so
    that the process's GX context stores it beside the original)."""
    def make(*args):
        suite = make_suite(*args)
        suite.name = f"{suite.name} ({severity})"
        for expectation in suite.expectations:
            if where(expectation):
                expectation.severity = severity
        return suite
    return make


def _shares(days: dict[str, tuple[int, int]]) -> pd.DataFrame:
    """A day summary: day -> (rows in, rows quarantined)."""
    return pd.DataFrame([{"partition_date": d, "rows_in": n, "rows_quarantined": q, "rows_valid": n - q,
                          "quarantine_share": q / n, "source_file": f"flights_{d}.csv"} for d, (n, q) in days.items()])


@pytest.mark.parametrize("severity, blocked", [(BLOCKING, True), (WARNING, False), (QUARANTINE, False)])
def test_the_share_expectations_severity_decides_whether_the_run_is_blocked(gx_validator, severity, blocked):
    summary = _shares({"2013-01-01": (100, 5), "2013-01-02": (100, 30)})
    suite = _with_severity(quarantine_share_suite, severity)
    run = gx_validator.validate(summary, "test_share_severity", suite, "flights", 0.10, docs=False)
    assert not run.success and run.max_severity_failure == severity
    found = RowFindings(pd.DataFrame(), pd.DataFrame(), summary, {"2013-01-02": Counter({"distance: outside [1, 6000]": 30})}, [])
    verdict = judge_shares(found, 0.10, run.max_severity_failure)
    assert verdict.blocked is blocked
    # the day's own verdict is the share against the limit, whatever the severity
    assert {d: ok for d, (ok, _) in verdict.days.items()} == {"2013-01-01": True, "2013-01-02": False}
    assert verdict.days["2013-01-02"][1] == {"rows_in": 100, "rows_quarantined": 30, "quarantine_share": 0.3, "limit": 0.1}
    if blocked:
        [(day, message)] = verdict.messages.items()  # the day it is about: flagged with it
        assert day == "2013-01-02"
        assert "partition 2013-01-02, file flights_2013-01-02.csv: 30 of 100 rows (30%)" in message
        assert "distance: outside [1, 6000] ×30" in message
    else:
        assert verdict.messages == {}


def test_a_run_without_failures_blocks_nothing(gx_validator):
    run = gx_validator.validate(_shares({"2013-01-01": (100, 5)}), "test_share_severity", quarantine_share_suite,
                                "flights", 0.10, docs=False)
    assert run.success and run.max_severity_failure is None and not blocks(run.max_severity_failure)


def _is_tailnum_limit(expectation) -> bool:
    return expectation.meta["column"] == "tailnum" and getattr(expectation, "mostly", 1) < 1


@pytest.mark.parametrize("severity", [WARNING, QUARANTINE])
def test_a_row_expectations_severity_decides_between_warning_and_quarantine(gx_validator, severity):
    """A day whose tail numbers are missing on a fifth of the flights: as WARNING (the suite's) the
    null limit is reported and no row is quarantined for it; as QUARANTINE its rows would be."""
    flights = replay_day("flights", DAY)
    missing = list(range(0, len(flights), 5))
    flights.loc[missing, "tailnum"] = None
    raw = _as_raw(flights, DAY)
    frame = prepare_for_validation(raw, FLIGHTS)
    suite = _with_severity(flights_row_suite, severity, where=_is_tailnum_limit)
    run = gx_validator.validate(frame, "test_row_severity", suite, docs=False)
    assert run.max_severity_failure == severity
    found = find_rows(raw, frame, run.outcomes, [DAY], FLIGHTS)
    rule = "more than 10% of the flights have no tail number"
    if severity == WARNING:
        assert len(found.quarantined) == 0 and len(found.valid) == len(raw)
        [warned] = found.warnings
        assert (warned.column, warned.rule) == ("tailnum", rule)
    else:
        without = set(raw.loc[raw["tailnum"].isna(), "row_number"])
        assert found.warnings == [] and set(found.quarantined["row_number"]) == without >= {p + 1 for p in missing}
        assert found.reason_totals() == [(f"tailnum: {rule}", len(without))]
    assert not blocks(run.max_severity_failure)


def _outcome(rows: list[int], column="distance", rule="outside [1, 6000]", severity=QUARANTINE, **kw) -> ExpectationOutcome:
    return ExpectationOutcome(type="expect_column_values_to_be_between", kwargs={"column": column}, success=not rows,
                              meta={"column": column, "reason": rule}, unexpected_index=rows, severity=severity, **kw)


def test_findings_split_count_and_version_every_day():
    """Two days from their outcomes alone: one with a bad row, one whose every row is bad."""
    one, two = "2013-06-10", "2013-06-11"
    flights = replay_day("flights", one).head(4)
    raw = pd.concat([_as_raw(flights, one), _as_raw(flights.assign(day="11"), two, source="g.csv")], ignore_index=True)
    frame = prepare_for_validation(raw, FLIGHTS)
    outcomes = [_outcome([1, 4, 5]), _outcome([6, 7], column="carrier", rule="unknown carrier code"),
                _outcome([0, 1, 2, 3, 4, 5, 6, 7], column="tailnum", rule="too many missing", severity=WARNING, observed=0.5)]
    found = find_rows(raw, frame, outcomes, [one, two, "2013-06-12"], FLIGHTS)

    assert found.summary[["partition_date", "rows_in", "rows_valid", "rows_quarantined"]].values.tolist() == [
        [one, 4, 3, 1], [two, 4, 0, 4], ["2013-06-12", 0, 0, 0]]
    assert found.reasons == {one: Counter({"distance: outside [1, 6000]": 1}),
                             two: Counter({"distance: outside [1, 6000]": 2, "carrier: unknown carrier code": 2})}
    assert found.reason_totals() == [("distance: outside [1, 6000]", 3), ("carrier: unknown carrier code", 2)]
    assert found.warnings == [Violation("tailnum", "too many missing", 0.5)]
    assert found.warnings[0].render() == "tailnum: too many missing (observed 0.5)"
    assert len(found.valid) == 3 and len(found.quarantined) == 5  # a WARNING quarantines nothing

    days = found.day_versions({one: "raw-1", two: "raw-2"})
    assert (days[one].rows_in, days[one].rows_valid, days[one].rows_quarantined) == (4, 3, 1)
    assert days[one].inputs == ("raw-1",) and days["2013-06-12"].inputs == ()
    assert days[one].source_file == "f.csv" and days[two].source_file == "g.csv" and days["2013-06-12"].source_file is None
    # a day without valid rows has the version of no rows, whichever day it is
    assert days[two].content_hash == days["2013-06-12"].content_hash != days[one].content_hash


def test_accounting_finds_the_day_that_does_not_balance():
    days = ["2013-06-10", "2013-06-11"]
    checked = accounting(days, {days[0]: 10, days[1]: 10}, {days[0]: 8, days[1]: 9}, {days[0]: 2, days[1]: 0})
    assert checked == {days[0]: (True, {"rows_in": 10, "rows_valid": 8, "rows_quarantined": 2}),
                       days[1]: (False, {"rows_in": 10, "rows_valid": 9, "rows_quarantined": 0})}
