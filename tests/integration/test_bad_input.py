"""Bad input through the real pipeline (in-process Dagster, real GX, real SQLite warehouse).

Every case: a clear error naming file, partition and column, or rows quarantined with reasons;
rows in = rows valid + rows quarantined for every day; a failed run changes nothing.
"""

import json

import pandas as pd
import pytest
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, TableMetadataValue, materialize
from sqlalchemy import text

from assets.validation.logic import parse_reasons
from pipelines.definitions import defs
from resources.schemas import flight_features, validated_tables
from resources.schemas import raw_tables as raw_tables_
from tests.support import defined_columns, replay_day, warehouse_snapshot

ASSETS = ["raw_flights", "raw_weather", "validated_flights", "validated_weather", "flight_features"]
DAY, DAY2 = "2013-03-04", "2013-03-05"


def _run(resources, partition=None, partition_range=None, instance=None):
    assets = [defs.get_assets_def(k) for k in ASSETS]
    tags = {}
    if partition_range:
        tags = {"dagster/asset_partition_range_start": partition_range[0],
                "dagster/asset_partition_range_end": partition_range[1]}
    return materialize(
        assets, partition_key=partition, tags=tags, resources=resources,
        instance=instance or DagsterInstance.ephemeral(), raise_on_error=False,
    )


def _failure_text(result) -> str:
    return "\n".join(
        e.event_specific_data.error.message
        for e in result.all_events
        if e.event_type_value == "STEP_FAILURE"
    )


def _snapshot(resources) -> dict[str, list]:
    """The current rows of every table, without version ids (the branch of a run that succeeds,
    e.g. the weather of a day whose flights fail, writes a new version of the same content)."""
    return warehouse_snapshot(resources["warehouse"], versions=False)


def _versions(resources, assets) -> list:
    catalog = resources["warehouse"].versions(assets=assets)
    return catalog[["asset", "partition_date", "version_id", "superseded_at"]].values.tolist()


def _balanced(resources, days):
    wh = resources["warehouse"]
    from resources.schemas import quarantine, raw_tables, validated_tables

    counts = {}
    for dataset in ("flights", "weather"):
        raw = wh.count_by_partition(raw_tables[dataset], days)
        ok = wh.count_by_partition(validated_tables[dataset], days)
        bad = wh.count_by_partition(quarantine, days, dataset=dataset)
        for d in days:
            assert raw[d] == ok[d] + bad[d], (dataset, d, raw[d], ok[d], bad[d])
        counts[dataset] = (raw, ok, bad)
    return counts["flights"]


def _quarantine(resources):
    with resources["warehouse"].engine.connect() as conn:
        rows = conn.execute(text("SELECT dataset, partition_date, source_file, row_number, reasons, original_row FROM quarantine")).fetchall()
    return [(d, p, f, n, [x.render() for x in parse_reasons(r)], json.loads(o)) for d, p, f, n, r, o in rows]


@pytest.mark.parametrize(
    "breakage, expected, arrival_kept",
    [
        (lambda f: f.drop(columns=["dep_delay"]), ["column 'dep_delay'", "required column missing"], False),
        (lambda f: f.rename(columns={"carrier": "airline"}), ["column 'carrier'", "airline; renamed?"], False),
        # a whole column of the wrong type: every row fails -> too many bad rows
        (lambda f: f.assign(distance="far"), ["failed row checks", "distance: not a number ×"], True),
        (lambda f: f.iloc[0:0], ["the file has no data rows"], False),
    ],
    ids=["missing-column", "renamed-column", "wrong-type-column", "header-only"],
)
def test_batch_level_failures_name_file_partition_column_and_change_nothing(
    resources, landing_day, breakage, expected, arrival_kept
):
    """A day-level failure writes nothing. Too many bad rows is found one step later: the rows
    that arrived are kept in raw_flights (nothing is lost), every table after it is unchanged."""
    path = landing_day(DAY)
    assert _run(resources, DAY).success
    before = _snapshot(resources)
    untouched = ["validated_flights", "flight_features"] + ([] if arrival_kept else ["raw_flights"])
    versions_before = _versions(resources, untouched)
    flights = breakage(replay_day("flights", DAY))
    path = landing_day(DAY, flights=flights)
    result = _run(resources, DAY)
    assert not result.success
    message = _failure_text(result)
    assert f"partition {DAY}" in message and str(path) in message, message
    for fragment in expected:
        assert fragment in message, message
    after = _snapshot(resources)
    raw_side = {"raw_flights", "raw_batches"}
    for table in after:
        if arrival_kept and table in raw_side:
            assert after[table] != before[table], table
        elif table != "day_flags":
            assert after[table] == before[table], table
    # a day blocked by validation is flagged as a broken feed (not trained on); one blocked at raw has nothing to flag
    flags = [(f.day, f.asset, f.check, f.severity) for f in resources["warehouse"].open_flags()]
    assert flags == ([(DAY, "validated_flights", "bad_row_share_within_limit", "ERROR")] if arrival_kept else [])
    assert _versions(resources, untouched) == versions_before  # no version made, none superseded
    if arrival_kept:
        raw = resources["warehouse"].read(raw_tables_["flights"], [DAY], columns=["distance"])
        assert set(raw["distance"]) == {"far"}  # the text that arrived is kept
    failed_checks = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert failed_checks and all(e.severity.value == "ERROR" for e in failed_checks)
    # a failing day's problems as a table: where (partition, file), the column, what is wrong
    batch = [e for e in failed_checks if e.check_name == "batch_is_readable_and_complete"]
    assert bool(batch) == (not arrival_kept)
    failures = [e.event_specific_data.user_failure_data.metadata["failures"] for e in result.all_events
                if e.event_type_value == "STEP_FAILURE" and e.step_key == "raw_flights"]
    assert len(failures) == len(batch) == (0 if arrival_kept else 1)
    tables = [e.metadata["failures"] for e in batch] + failures
    for table in tables:
        assert isinstance(table, TableMetadataValue)
        assert [c.name for c in table.schema.columns] == ["partition", "source_file", "column", "problem"]
        assert table.records and all((r.data["partition"], r.data["source_file"]) == (DAY, str(path)) for r in table.records)
        named = [f"column '{r.data['column']}'" for r in table.records if r.data["column"]]
        assert [f for f in expected if f.startswith("column '")] == named


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n\x00\x00garbage\xff\xfe"], ids=["empty", "binary"])
def test_unreadable_file_fails_with_the_file_named(resources, workdir, landing_day, content):
    landing_day(DAY)
    (workdir["landing"] / f"flights_{DAY}.csv").write_bytes(content)
    result = _run(resources, DAY)
    assert not result.success
    message = _failure_text(result)
    assert f"partition {DAY}, file {workdir['landing'] / f'flights_{DAY}.csv'}" in message, message
    assert "unreadable file" in message or "no data rows" in message
    assert _snapshot(resources)["raw_flights"] == []


def test_row_level_problems_are_quarantined_with_file_partition_and_every_reason(resources, landing_day):
    flights = replay_day("flights", DAY)
    flights.loc[0, "distance"] = "-40"
    flights.loc[0, "carrier"] = "QQ"  # two problems on one row
    flights.loc[1, "sched_dep_time"] = "2460"
    flights.loc[2, "dest"] = "NOWHERE"
    flights.loc[3, "arr_delay"] = "12 minutes"
    flights = pd.concat([flights, flights.iloc[[50, 50]]], ignore_index=True)
    path = landing_day(DAY, flights=flights)
    result = _run(resources, DAY)
    assert result.success, _failure_text(result)
    rows = _quarantine(resources)
    by_row = {n: (p, f, r, o) for d, p, f, n, r, o in rows if d == "flights"}
    assert set(by_row) == {1, 2, 3, 4, len(flights) - 1, len(flights)}
    p, f, reasons, original = by_row[1]
    assert p == DAY and f == str(path)
    assert any(r.startswith("distance: outside") for r in reasons)
    assert any(r.startswith("carrier: unknown carrier") for r in reasons)
    assert original["distance"] == "-40" and original["carrier"] == "QQ"
    raw, ok, bad = _balanced(resources, [DAY])
    # materialization metadata in the instance tells the same counts
    mat = result.asset_materializations_for_node("validated_flights")[0]
    assert mat.metadata["rows_quarantined"].value == 6
    assert mat.metadata["rows_in"].value == mat.metadata["rows_valid"].value + 6
    key = "carrier, flight, origin, sched_dep_time"
    duplicate_reason = f"{key}: duplicate: ({key}) already seen earlier that day"
    assert mat.metadata["quarantine_reasons"].data[duplicate_reason] == 2
    assert mat.metadata["dagster/row_count"].value == mat.metadata["rows_valid"].value == ok[DAY] == len(flights) - 6
    days = mat.metadata["days"]
    assert isinstance(days, TableMetadataValue) and [c.name for c in days.schema.columns] == [
        "partition_date", "rows_in", "rows_valid", "rows_quarantined", "quarantine_share"]
    assert [r.data for r in days.records] == [{"partition_date": DAY, "rows_in": raw[DAY], "rows_valid": ok[DAY],
                                               "rows_quarantined": 6, "quarantine_share": 6 / raw[DAY]}]
    nulls = {e.check_name: e for e in result.get_asset_check_evaluations()
             if e.asset_key.to_user_string() == "validated_flights"}["null_limits"]
    assert nulls.passed and isinstance(nulls.metadata["violations"], TableMetadataValue)
    assert nulls.metadata["violations"].records == []


def test_a_day_without_weather_is_built_without_weather_and_warned(resources, landing_day):
    landing_day(DAY, weather=False)
    result = _run(resources, DAY)
    assert result.success, _failure_text(result)
    checks = {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}
    raw_weather = result.asset_materializations_for_node("raw_weather")[0]
    assert raw_weather.metadata["arrived_without_file"].value is True
    assert raw_weather.metadata["rows_in"].value == 0 == raw_weather.metadata["dagster/row_count"].value
    assert resources["warehouse"].count_by_partition(raw_tables_["weather"], [DAY])[DAY] == 0
    assert checks[("flight_features", "weather_coverage")].severity.value == "WARN"
    assert not checks[("flight_features", "weather_coverage")].passed
    feats = resources["warehouse"].read(flight_features, [DAY])
    assert len(feats) == len(replay_day("flights", DAY)) and (feats["weather_available"] == 0).all()


def test_a_bad_day_in_a_multi_day_run_fails_the_run_and_writes_no_day(resources, landing_day):
    landing_day(DAY)
    landing_day(DAY2, flights=replay_day("flights", DAY2).drop(columns=["origin"]))
    result = _run(resources, partition_range=(DAY, DAY2))
    assert not result.success
    assert f"partition {DAY2}" in _failure_text(result) and "column 'origin'" in _failure_text(result)
    after = _snapshot(resources)
    # no day of flights or features was written (the weather branch of the run succeeded)
    for table in ("raw_flights", "validated_flights", "quarantine", "flight_features"):
        assert after[table] == [], table
    assert not [r for r in after["raw_batches"] if r[1] == "flights"]


def test_multi_day_run_balances_every_day_and_records_per_day_metadata(resources, landing_day):
    landing_day(DAY)
    fl = replay_day("flights", DAY2)
    fl.loc[5, "distance"] = "-1"
    landing_day(DAY2, flights=fl)
    instance = DagsterInstance.ephemeral()
    result = _run(resources, partition_range=(DAY, DAY2), instance=instance)
    assert result.success, _failure_text(result)
    raw, ok, bad = _balanced(resources, [DAY, DAY2])
    mats = {m.partition: m for m in result.asset_materializations_for_node("validated_flights")}
    assert set(mats) == {DAY, DAY2}
    for day, m in mats.items():
        assert m.metadata["rows_in"].value == raw[day]
        assert m.metadata["rows_valid"].value == ok[day]
        assert m.metadata["rows_quarantined"].value == bad[day]
        assert len(m.metadata["data_version"].value) == 16
    assert mats[DAY2].metadata["rows_quarantined"].value == 1 and mats[DAY].metadata["rows_quarantined"].value == 0
    # what the instance keeps: each day's newest materialization carries the standard table metadata
    for day in (DAY, DAY2):
        [record] = instance.fetch_materializations(AssetRecordsFilter(
            asset_key=AssetKey("validated_flights"), asset_partitions=[day]), limit=1).records
        meta = record.asset_materialization.metadata
        assert meta["dagster/row_count"].value == ok[day] == meta["rows_valid"].value
        assert "dagster/column_schema" not in meta  # the schema is the definition's: static, not repeated per day
        assert defined_columns("validated_flights") == [c.name for c in validated_tables["flights"].columns]
        assert isinstance(meta["days"], TableMetadataValue)
        assert [(r.data["partition_date"], r.data["rows_valid"]) for r in meta["days"].records] == [(DAY, ok[DAY]), (DAY2, ok[DAY2])]
    # the other assets that write rows: each day's row count as the warehouse has it, and the table's columns
    wh = resources["warehouse"]
    for asset, table in (("raw_flights", raw_tables_["flights"]), ("raw_weather", raw_tables_["weather"]),
                         ("flight_features", flight_features)):
        stored = wh.count_by_partition(table, [DAY, DAY2])
        for day in (DAY, DAY2):
            [record] = instance.fetch_materializations(AssetRecordsFilter(
                asset_key=AssetKey(asset), asset_partitions=[day]), limit=1).records
            meta = record.asset_materialization.metadata
            assert meta["dagster/row_count"].value == stored[day] > 0, (asset, day)
            assert defined_columns(asset) == [c.name for c in table.columns]
            if asset.startswith("raw_"):  # the run's days, as a table
                days = meta["days"]
                assert isinstance(days, TableMetadataValue)
                assert [c.name for c in days.schema.columns] == ["partition_date", "row_count", "source_file", "data_version"]
                assert [(r.data["partition_date"], r.data["row_count"]) for r in days.records] == [(DAY, stored[DAY]), (DAY2, stored[DAY2])]
