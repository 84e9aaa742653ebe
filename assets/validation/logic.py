"""Validation logic (no Dagster): typed rows for the row suite, the structured reason of each
failing row, the split into valid and quarantined rows, each day's accounting, and the verdicts:
what a failed expectation does is its Great Expectations severity (assets/validation/expectations.py)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from assets.common import data_version, data_versions_by_partition
from assets.validation.expectations import BLOCKING, QUARANTINE, WARNING
from resources.day_versions import DayVersion
from resources.schemas import DatasetContract


@dataclass(frozen=True)
class QuarantineReason:
    """Why a row is quarantined: the contract column, the rule it broke, the text that arrived."""

    column: str
    rule: str
    value: str | None = None  # the value as it arrived (None: not shown, e.g. a missing value)

    @property
    def kind(self) -> str:
        """The reason without the value, so that reasons group (metadata, summaries)."""
        return f"{self.column}: {self.rule}"

    def render(self) -> str:
        return self.kind if self.value is None else f"{self.kind} (got {self.value!r})"

    def as_json(self) -> dict:
        return {"column": self.column, "rule": self.rule, "value": self.value}

    @classmethod
    def from_json(cls, obj) -> QuarantineReason:
        if isinstance(obj, str):  # a row quarantined before reasons were structured: "column: rule (got 'x')"
            column, _, rest = obj.partition(": ")
            rule, _, value = rest.partition(" (got ")
            return cls(column, rule, value.removesuffix(")").strip("'") or None)
        return cls(obj["column"], obj["rule"], obj.get("value"))


def parse_reasons(stored: str) -> list[QuarantineReason]:
    """The reasons of a quarantine row as the warehouse stores them (a JSON list)."""
    return [QuarantineReason.from_json(r) for r in json.loads(stored)]


NEW_YORK = "America/New_York"  # the clock of every NYC airport's local times


def prepare_for_validation(raw: pd.DataFrame, contract: DatasetContract) -> pd.DataFrame:
    """Typed contract columns, the arrived text of numeric columns (`<col>__raw`) and derived
    columns for the row suite. The index is unique over the whole run."""
    frame = raw.reset_index(drop=True)
    out = frame[["partition_date", "source_file", "row_number"]].copy()
    for column, kind in contract.columns.items():
        text = frame[column].astype(object).where(frame[column].notna(), None)
        if kind == "str":
            out[column] = text
        else:
            if isinstance(frame[column].dtype, pd.StringDtype):  # text only (the warehouse's, the CSVs'): vectorized
                stripped = frame[column].str.strip()
                stripped = stripped.where(stripped != "")
            else:
                stripped = text.map(lambda v: v.strip() if isinstance(v, str) else v)
                stripped = stripped.where(stripped != "", None)
            out[f"{column}__raw"] = stripped
            out[column] = pd.to_numeric(stripped, errors="coerce").astype(float)
    date = pd.to_datetime({"year": out["year"], "month": out["month"], "day": out["day"]}, errors="coerce")
    out["flight_date"] = date.dt.strftime("%Y-%m-%d").astype(object).where(date.notna(), None)
    if "time_hour" in contract.columns:
        # the UTC instant's hour on New York's clock, beside the local `hour` the feed gave: equal on
        # every row of the real year; apart when the clock fields come in another time zone
        instant = pd.to_datetime(frame["time_hour"], utc=True, errors="coerce", format="ISO8601")
        out["time_hour_new_york_hour"] = instant.dt.tz_convert(NEW_YORK).dt.hour.astype(float)
    key = ["partition_date", *contract.key]
    out["occurrence"] = out.groupby(key, dropna=False, sort=False).cumcount()
    return out


@dataclass(frozen=True)
class Violation:
    """A failed WARNING expectation (a null limit over the run's days): reported, never blocking."""

    column: str
    rule: str
    observed: object = None

    def render(self) -> str:
        return f"{self.column}: {self.rule} (observed {self.observed})"


def row_reasons(outcomes, frame: pd.DataFrame) -> pd.Series:
    """index -> list of `QuarantineReason`, for the rows failing any QUARANTINE (row-level)
    expectation (`outcomes`: the row suite's `ExpectationOutcome`s)."""
    pieces = []
    for outcome in outcomes:
        if outcome.success or outcome.severity != QUARANTINE or not outcome.unexpected_index:
            continue
        idx = pd.Index(outcome.unexpected_index)
        column, rule = outcome.meta["column"], outcome.meta["reason"]
        checked = outcome.kwargs.get("column")
        if checked and outcome.type != "expect_column_values_to_not_be_null" and checked != "occurrence":
            # show the text that arrived, not the parsed number
            shown = f"{checked}__raw" if f"{checked}__raw" in frame.columns else checked
            values = frame.loc[idx, shown].astype(str)
        elif outcome.type == "expect_column_pair_values_to_be_equal":
            values = frame.loc[idx, "flight_date"].map(lambda v: v if isinstance(v, str) else "no valid date")
        else:
            values = pd.Series(None, index=idx, dtype=object)
        pieces.append(pd.Series([QuarantineReason(column, rule, v) for v in values], index=idx, dtype=object))
    if not pieces:
        return pd.Series([], dtype=object)
    return pd.concat(pieces).groupby(level=0).agg(list)


def split_rows(raw: pd.DataFrame, frame: pd.DataFrame, reasons: pd.Series, contract: DatasetContract
               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(valid rows, typed) and (quarantined rows with original text and reasons)."""
    bad = frame.index.isin(reasons.index)
    valid = frame.loc[~bad, ["partition_date", "source_file", "row_number", *contract.column_names]].copy()
    for column, kind in contract.columns.items():
        if kind == "int":
            valid[column] = valid[column].astype("Int64")
    original_cols = [*contract.column_names, "extra_columns"]
    raw = raw.reset_index(drop=True)
    bad_raw = raw.loc[bad]
    originals = bad_raw[original_cols].astype(object).where(bad_raw[original_cols].notna(), None)
    quarantined = bad_raw[["partition_date", "source_file", "row_number"]].copy()
    quarantined["reasons"] = [json.dumps([r.as_json() for r in rs]) for rs in reasons.reindex(bad_raw.index)]
    quarantined["original_row"] = [json.dumps(r) for r in originals.to_dict("records")]
    return valid, quarantined


def day_summary(partitions: list[str], raw: pd.DataFrame, reasons: pd.Series, frame: pd.DataFrame) -> pd.DataFrame:
    """Per day: rows in, quarantined, valid, the quarantined share and the source file."""
    rows_in = raw.groupby("partition_date").size()
    bad_by_day = frame.loc[reasons.index, "partition_date"].value_counts() if len(reasons) else pd.Series(dtype=int)
    source = raw.groupby("partition_date")["source_file"].first()
    out = pd.DataFrame({"partition_date": partitions})
    out["rows_in"] = out["partition_date"].map(rows_in).fillna(0).astype(int)
    out["rows_quarantined"] = out["partition_date"].map(bad_by_day).fillna(0).astype(int)
    out["rows_valid"] = out["rows_in"] - out["rows_quarantined"]
    out["quarantine_share"] = (out["rows_quarantined"] / out["rows_in"].where(out["rows_in"] > 0)).fillna(0.0)
    out["source_file"] = out["partition_date"].map(source)
    return out


def reason_counts(reasons: pd.Series, frame: pd.DataFrame) -> dict[str, Counter]:
    """partition -> Counter of reason kinds (column: rule, without the value, so they group)."""
    out: dict[str, Counter] = {}
    if not len(reasons):
        return out
    for day, rs in zip(frame.loc[reasons.index, "partition_date"], reasons):
        out.setdefault(day, Counter()).update(r.kind for r in rs)
    return out


def too_many_bad_rows(summary: pd.DataFrame, counts: dict[str, Counter], limit: float) -> dict[str, str]:
    """day -> its message, for each day whose quarantined share is above `limit`: file,
    partition, the most common reasons."""
    messages = {}
    for r in summary.loc[summary["quarantine_share"] > limit].itertuples():
        top = ", ".join(f"{k} ×{n}" for k, n in counts.get(r.partition_date, Counter()).most_common(3))
        messages[r.partition_date] = (
            f"partition {r.partition_date}, file {r.source_file}: {r.rows_quarantined} of {r.rows_in} rows "
            f"({r.quarantine_share:.0%}) failed row checks, above the limit {limit:.0%}; most common: {top}"
        )
    return messages


def warnings_of(outcomes) -> list[Violation]:
    """The WARNING expectations that failed (null limits), with what was observed."""
    return [Violation(o.meta["column"], o.meta["reason"], o.observed)
            for o in outcomes if o.severity == WARNING and not o.success]


def blocks(max_severity_failure: str | None) -> bool:
    """Whether a suite run blocks the days it validated: its most severe failed expectation (GX's
    `get_max_severity_failure()`, as `SuiteRun.max_severity_failure`) is CRITICAL."""
    return max_severity_failure == BLOCKING


@dataclass(frozen=True)
class RowFindings:
    """What the row suite found over the run's days."""

    valid: pd.DataFrame  # typed: partition_date, source_file, row_number and the contract columns
    quarantined: pd.DataFrame  # partition_date, source_file, row_number, reasons, original_row
    summary: pd.DataFrame  # one row per day (`day_summary`)
    reasons: dict[str, Counter]  # day -> reason kinds (`reason_counts`)
    warnings: list[Violation]  # the failed WARNING expectations, over all the run's days

    def reason_totals(self) -> list[tuple[str, int]]:
        """(reason kind, rows) over every day of the run, the most common first."""
        return sum(self.reasons.values(), Counter()).most_common()

    def day_versions(self, raw_versions: Mapping[str, str]) -> dict[str, DayVersion]:
        """Each day's new version: the content hash of its valid rows (one hash for every day
        without valid rows), its accounting, and the raw version it was built from."""
        hashes = data_versions_by_partition(self.valid, exclude=("source_file",))
        no_rows = data_version(self.valid.drop(columns=["source_file"]).iloc[0:0])
        return {r.partition_date: DayVersion(
            hashes.get(r.partition_date, no_rows), source_file=None if pd.isna(r.source_file) else str(r.source_file),
            rows_in=int(r.rows_in), rows_valid=int(r.rows_valid), rows_quarantined=int(r.rows_quarantined),
            inputs=tuple(v for v in [raw_versions.get(r.partition_date)] if v)) for r in self.summary.itertuples()}


def find_rows(raw: pd.DataFrame, frame: pd.DataFrame, outcomes, partitions: list[str], contract: DatasetContract
              ) -> RowFindings:
    """The row suite's `outcomes` over `frame` (`prepare_for_validation(raw, contract)`; no
    outcomes: nothing was validated) turned into the rows of each side and each day's figures."""
    reasons = row_reasons(outcomes, frame)
    valid, quarantined = split_rows(raw, frame, reasons, contract)
    return RowFindings(valid, quarantined, day_summary(partitions, raw, reasons, frame), reason_counts(reasons, frame),
                       warnings_of(outcomes))


@dataclass(frozen=True)
class ShareVerdict:
    """Each day's quarantined share against the limit, and whether the run is blocked."""

    days: dict[str, tuple[bool, dict]]  # day -> (within the limit, its figures)
    blocked: bool  # the share suite's run failed a CRITICAL expectation: nothing is written
    messages: dict[str, str]  # when blocked: day -> why (the days above the limit, their most common reasons)


def judge_shares(found: RowFindings, limit: float, max_severity_failure: str | None) -> ShareVerdict:
    """The share check of every day; blocked when the day-level share suite (run on
    `found.summary`) failed a CRITICAL expectation (`max_severity_failure`)."""
    days = {r.partition_date: (bool(r.quarantine_share <= limit), {
        "rows_in": int(r.rows_in), "rows_quarantined": int(r.rows_quarantined),
        "quarantine_share": float(r.quarantine_share), "limit": float(limit)}) for r in found.summary.itertuples()}
    blocked = blocks(max_severity_failure)
    return ShareVerdict(days, blocked, too_many_bad_rows(found.summary, found.reasons, limit) if blocked else {})


def accounting(partitions: list[str], rows_in: Mapping[str, int], rows_valid: Mapping[str, int],
               rows_quarantined: Mapping[str, int]) -> dict[str, tuple[bool, dict]]:
    """Per day, as counted in the warehouse: (rows in = rows valid + rows quarantined, the counts)."""
    return {p: (rows_in[p] == rows_valid[p] + rows_quarantined[p],
                {"rows_in": rows_in[p], "rows_valid": rows_valid[p], "rows_quarantined": rows_quarantined[p]})
            for p in partitions}


# The largest jump of the real year's weather across midnight, per airport (median of the first 3
# hours against the median of the previous day's last 3): 12.1 °F. Readings in °C instead of °F
# jump by 25 °F or more at any temperature New York has.
TEMPERATURE_JUMP_LIMIT_F = 18.0


def temperature_jumps(days: list[str], valid: pd.DataFrame, earlier: pd.DataFrame) -> pd.DataFrame:
    """Per day of `days` and airport: the median temperature of its first 3 hours minus the median
    of the last 3 hours of the newest earlier day with readings (this run's valid rows, else the
    warehouse's `earlier` days). Columns partition_date, origin, jump (NaN: nothing to compare)."""
    columns = ["partition_date", "origin", "hour", "temp"]
    readings = pd.concat([earlier[columns], valid[columns]], ignore_index=True).dropna(subset=["temp"])
    readings = readings.astype({"hour": float, "temp": float})
    first = readings[readings["hour"] <= 2].groupby(["origin", "partition_date"])["temp"].median()
    last = readings[readings["hour"] >= 21].groupby(["origin", "partition_date"])["temp"].median()
    rows = []
    for origin in sorted(set(readings["origin"])):
        before = last.get(origin, pd.Series(dtype=float))
        for day in days:
            previous = before[before.index < day]
            jump = first.get((origin, day), float("nan")) - (previous.iloc[-1] if len(previous) else float("nan"))
            rows.append({"partition_date": day, "origin": origin, "jump": float(jump)})
    return pd.DataFrame(rows, columns=["partition_date", "origin", "jump"])


def temperature_verdicts(jumps: pd.DataFrame, limit: float = TEMPERATURE_JUMP_LIMIT_F) -> dict[str, tuple[bool, dict]]:
    """day -> (passed, metadata): a day fails when any airport's temperature jumps by more than `limit`."""
    out = {}
    for day, group in jumps.groupby("partition_date", sort=True):
        judged = group.dropna(subset=["jump"])
        worst = judged.loc[judged["jump"].abs().idxmax()] if len(judged) else None
        out[day] = (bool((judged["jump"].abs() <= limit).all()), {
            "largest_jump_f": round(float(worst["jump"]), 2) if worst is not None else None,
            "airport": worst["origin"] if worst is not None else None, "limit_f": limit,
            "airports_judged": int(len(judged))})
    return out
