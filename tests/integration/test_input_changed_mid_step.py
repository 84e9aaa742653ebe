"""A day written again between a step's read of its input and its write (a re-ingestion racing a
validation, a re-validation racing the features), on a real Dagster instance, GX and SQLite
warehouse: the step writes nothing built from the superseded input. Its write checks, in its
transaction, that the versions it read are still current; the mismatch is retried by the assets'
store retry policy (not a `DataFailure`), naming the day and both versions, and the retry builds
from the new version. The concurrent write is made at the point between the step's read and its
write (its logic function, wrapped), through the warehouse's own versioned write, with content
that differs from what the step read (same row count: the accounting alone would not see it)."""

import json

import pytest
from dagster import AssetKey, DagsterEventType, DagsterInstance

from resources.schemas import flight_features, quarantine, raw_batches, raw_tables, validated_tables
from tests.support import land_and_ingest

DAY = "2013-03-12"
RESTATED = 120  # rows whose arrival delay the second delivery (or re-validation) changes


def _write_again(warehouse, asset: str, frames: dict, digest: str, **facts) -> str:
    """A new version of DAY of `asset` with these rows, as its own step writes it; returns its id."""
    from resources.day_versions import DayVersion

    with warehouse.replace_partitions() as tx:
        return tx.write_version(asset, {DAY: DayVersion(digest, **facts)}, frames).ids[DAY]


def _run(defs, instance, asset: str):
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(instance=instance, partition_key=DAY, asset_selection=[AssetKey(asset)],
                                  raise_on_error=False)


def _retries(result) -> list[str]:
    """The error behind each retry (Dagster wraps it in the policy's retry request): its message."""
    out = []
    for event in result.all_events:
        if event.event_type == DagsterEventType.STEP_UP_FOR_RETRY:
            error, messages = event.event_specific_data.error, []
            while error is not None:
                messages.append(error.message)
                error = error.cause
            out.append(" | ".join(messages))
    return out


def _current(warehouse, asset: str):
    catalog = warehouse.versions(assets=[asset], days=[DAY])
    return catalog[catalog["superseded_at"].isna()].iloc[0]


@pytest.fixture
def ingested(workdir, resources, monkeypatch):
    from pipelines.definitions import build_definitions

    monkeypatch.setenv("FLIGHTS_DATA_DIR", str(workdir["data"]))
    monkeypatch.setenv("WAREHOUSE_URL", workdir["warehouse_url"])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", workdir["mlflow_uri"])
    defs = build_definitions(resources)
    instance = DagsterInstance.from_config(str(workdir["home"]))
    land_and_ingest(defs, instance, workdir["landing"], [DAY])
    return defs, instance, resources["warehouse"]


def test_a_day_ingested_again_while_it_is_validated_is_validated_again(ingested, monkeypatch):
    import assets.validation.asset as validation

    defs, instance, warehouse = ingested
    read_raw = _current(warehouse, "raw_flights").version_id
    rows = warehouse.read(raw_tables["flights"], [DAY])
    rows.loc[rows.index[:RESTATED], "arr_delay"] = "95"  # restated: late, all of them
    batch = warehouse.read(raw_batches, [DAY], dataset="flights").drop(columns=["dataset"])
    made = []
    find_rows = validation.find_rows

    def racing_ingestion(*args, **kwargs):  # between the step's read of raw_flights and its write
        if not made:
            made.append(_write_again(warehouse, "raw_flights", {raw_tables["flights"]: rows, raw_batches: batch},
                                     "restated", source_file="flights_restated.csv", rows_in=len(rows)))
        return find_rows(*args, **kwargs)

    monkeypatch.setattr(validation, "find_rows", racing_ingestion)
    result = _run(defs, instance, "validated_flights")
    assert result.success
    [new_raw] = made
    validated = _current(warehouse, "validated_flights")
    # the current validated version is built from the raw version current now, and holds its content
    assert json.loads(validated.inputs) == [new_raw], f"built from {validated.inputs}, superseded by {new_raw}"
    delays = warehouse.read(validated_tables["flights"], [DAY], columns=["row_number", "arr_delay"]).sort_values("row_number")
    assert (delays["arr_delay"].head(RESTATED) == 95).all()
    # the first attempt wrote nothing and said why: the day, the version read, the one current
    [message] = _retries(result)
    assert "validated_flights" in message and DAY in message
    assert f"read version {read_raw}, now current {new_raw}" in message
    assert len(warehouse.versions(assets=["validated_flights"], days=[DAY])) == 2  # the first ingest's, the retry's


def test_a_day_validated_again_while_its_features_are_built_is_built_again(ingested, monkeypatch):
    import assets.features.asset as features

    defs, instance, warehouse = ingested
    read = _current(warehouse, "validated_flights")
    valid = warehouse.read(validated_tables["flights"], [DAY])
    on_time = valid.index[valid["arr_delay"] < 15][:RESTATED]
    valid.loc[on_time, "arr_delay"] = 95.0  # re-validated content: these flights late now
    held = warehouse.read(quarantine, [DAY], dataset="flights").drop(columns=["dataset"])
    made = []
    build_features = features.build_features

    def racing_validation(*args, **kwargs):  # between the step's read of validated_* and its write
        if not made:
            made.append(_write_again(warehouse, "validated_flights", {validated_tables["flights"]: valid, quarantine: held},
                                     "revalidated", rows_in=int(read.rows_in), rows_valid=len(valid),
                                     rows_quarantined=len(held), inputs=tuple(json.loads(read.inputs))))
        return build_features(*args, **kwargs)

    monkeypatch.setattr(features, "build_features", racing_validation)
    before = int(warehouse.read(flight_features, [DAY], columns=["is_late"])["is_late"].sum())
    result = _run(defs, instance, "flight_features")
    assert result.success
    [new_validated] = made
    built = _current(warehouse, "flight_features")
    assert new_validated in json.loads(built.inputs) and read.version_id not in json.loads(built.inputs), built.inputs
    assert int(warehouse.read(flight_features, [DAY], columns=["is_late"])["is_late"].sum()) == before + len(on_time)
    [message] = _retries(result)
    assert "flight_features" in message and DAY in message
    assert f"validated_flights {DAY} (read version {read.version_id}, now current {new_validated})" in message
