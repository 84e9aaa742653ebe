"""Data versions you can restore, on a real instance, warehouse and MLflow store: a day delivered
again (a correction) becomes a new current version and the old one stays; the model trained on
the old one is still rebuilt exactly; a day's history lists its versions and the model that used
them (also on the asset's partition metadata); the retention job deletes only superseded
versions no registered model uses; the impossible requests (a deleted version, an unknown day)
name the days. Also run on PostgreSQL (`make test-postgres` runs the e2e mark)."""

import pytest
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, TableMetadataValue

from assets.day_history import HISTORY_COLUMNS
from tests.support import defined_columns, land_and_ingest, replay_day, write_landing

pytestmark = pytest.mark.e2e  # every store on the test's profile: SQLite, or PostgreSQL

DAYS = [f"2013-06-{d:02d}" for d in range(1, 15)]
CORRECTED = "2013-06-03"  # a train day of the 14-day window


def retrain(defs, instance, end_day: str):
    config = {"ops": {"training_set": {"config": {"end_day": end_day, "window_days": 14, "min_rows": 500}},
                      "candidate_model": {"config": {"tuning_trials": 0, "max_iter": 40, "train_window_options": [0]}},
                      "model_evaluation": {"config": {"min_margin": -1.0, "segment_margin": 1.0}}}}
    return defs.resolve_job_def("retrain_job").execute_in_process(instance=instance, run_config=config)


def partition_metadata(instance, asset: str, day: str) -> dict:
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[day]), limit=1).records
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def retention(defs, instance, **config):
    result = defs.resolve_job_def("data_retention_job").execute_in_process(
        instance=instance, run_config={"ops": {"delete_unused_data_versions": {"config": config}}})
    assert result.success
    events = [e for e in result.all_node_events if e.event_type_value == "STEP_OUTPUT"]
    return {k: v.value for k, v in events[0].event_specific_data.metadata.items()}


def column(table, name: str) -> list:
    """One column of table metadata, checked to be one."""
    assert isinstance(table, TableMetadataValue) and name in [c.name for c in table.schema.columns]
    return [r.data[name] for r in table.records]


def test_a_model_is_rebuilt_from_its_versions_after_its_days_were_delivered_again(workdir, resources, monkeypatch):
    from pipelines.commands.history import history
    from pipelines.commands.history import main as history_main
    from pipelines.commands.reproduce import main as reproduce_main
    from pipelines.commands.reproduce import reproduce
    from pipelines.definitions import build_definitions
    from resources.errors import DataProblem
    from resources.schemas import flight_features, raw_tables, validated_tables

    monkeypatch.setenv("FLIGHTS_DATA_DIR", str(workdir["data"]))
    monkeypatch.setenv("WAREHOUSE_URL", workdir["warehouse_url"])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", workdir["mlflow_uri"])
    registry, warehouse = resources["model_registry"], resources["warehouse"]
    defs = build_definitions(resources)
    instance = DagsterInstance.from_config(str(workdir["home"]))
    land_and_ingest(defs, instance, workdir["landing"], DAYS)
    assert retrain(defs, instance, DAYS[-1]).success
    v1 = registry.record("1")
    # the window's labelled rows, as the warehouse has them, on training_set (splits: a table)
    [record] = instance.fetch_materializations(AssetKey("training_set"), limit=1).records
    trained = record.asset_materialization.metadata
    labelled = int(warehouse.read(flight_features, v1.window.days, columns=["is_late"])["is_late"].notna().sum())
    assert trained["dagster/row_count"].value == labelled == trained["rows"].value > 0
    assert column(trained["splits"], "split") == ["train", "validation", "test"] and sum(column(trained["splits"], "rows")) == labelled
    first = warehouse.current_versions("flight_features", DAYS)
    assert v1.window.version_ids == {d: first[d][0] for d in v1.window.days}  # the versions it read
    assert v1.window.data_versions == {d: first[d][1] for d in v1.window.days}

    # a corrected delivery of one day: some arrival delays restated, two flights withdrawn
    corrected = replay_day("flights", CORRECTED)
    corrected.loc[corrected.index[:150], "arr_delay"] = "75"
    corrected = corrected.iloc[:-2]
    write_landing(workdir["landing"], "flights", CORRECTED, corrected)
    assert defs.resolve_job_def("ingest_job").execute_in_process(instance=instance, partition_key=CORRECTED).success
    now = warehouse.current_versions("flight_features", DAYS)
    assert now[CORRECTED] != first[CORRECTED] and all(now[d] == first[d] for d in DAYS if d != CORRECTED)
    assert len(warehouse.read(raw_tables["flights"], [CORRECTED])) == len(corrected)  # reads: the current version
    # each asset's newest materialization of the day: the rows it wrote (read back) and its table's columns
    for asset, table in (("raw_flights", raw_tables["flights"]), ("validated_flights", validated_tables["flights"]),
                         ("flight_features", flight_features)):
        [record] = instance.fetch_materializations(AssetRecordsFilter(
            asset_key=AssetKey(asset), asset_partitions=[CORRECTED]), limit=1).records
        written = record.asset_materialization.metadata
        assert written["dagster/row_count"].value == warehouse.count_by_partition(table, [CORRECTED])[CORRECTED] > 0, asset
        assert defined_columns(asset) == [c.name for c in table.columns]
    assert partition_metadata(instance, "raw_flights", CORRECTED)["dagster/row_count"] == len(corrected)

    # the day's history: two versions of every asset (the weather was ingested again too, the
    # same content under a new ingestion id); the superseded ones used by v1
    day = history([CORRECTED], registry=registry, warehouse=warehouse)[CORRECTED]
    by_asset = {}
    for row in day:
        by_asset.setdefault(row["asset"], []).append(row)
    assert {a: len(rows) for a, rows in by_asset.items()} == {
        "raw_flights": 2, "raw_weather": 2, "validated_flights": 2, "validated_weather": 2, "flight_features": 2}
    for asset, (old, new) in by_asset.items():
        assert old["status"].startswith("superseded") and new["status"] == "current"
        assert old["used_by"] == f"{registry.model_name} v1" and new["used_by"] == ""  # raw: through its features
        assert (old["content_hash"] == new["content_hash"]) == asset.endswith("weather")
    assert by_asset["raw_flights"][1]["rows_in"] == len(corrected) == by_asset["raw_flights"][0]["rows_in"] - 2
    assert by_asset["raw_flights"][1]["source_file"].endswith(f"flights_{CORRECTED}.csv")
    assert by_asset["flight_features"][0]["content_hash"] == first[CORRECTED][1]
    meta = partition_metadata(instance, "raw_flights", CORRECTED)  # the same on the asset's partition
    assert meta["supersedes"] == by_asset["raw_flights"][0]["version"]
    assert meta["ingestion_id"] == by_asset["raw_flights"][1]["version"] and meta["versions_of_day"] == 2
    day_history = meta["day_history"]  # a table: the asset's versions of the day, oldest first
    assert [c.name for c in day_history.schema.columns] == HISTORY_COLUMNS
    assert column(day_history, "version") == [r["version"] for r in by_asset["raw_flights"]]
    assert [s.split()[0] for s in column(day_history, "status")] == ["superseded", "current"]
    assert column(day_history, "used_by") == [f"{registry.model_name} v1", ""]
    assert column(day_history, "rows_in") == [len(corrected) + 2, len(corrected)]
    assert partition_metadata(instance, "flight_features", CORRECTED)["built_from"] == by_asset["flight_features"][1]["built_from"]

    # v1 is rebuilt exactly from the versions it read, though its day was delivered again
    result = reproduce("1", registry=registry, warehouse=warehouse)
    assert result["reproduced"] and result["max_abs_prediction_difference"] == 0.0
    assert result["days_ingested_again_since"] == [CORRECTED] and result["days_whose_data_changed"] == []

    # a new model reads the current versions
    assert retrain(defs, instance, DAYS[-1]).success
    assert registry.record("2").window.version_ids[CORRECTED] == now[CORRECTED][0]

    # retention: nothing v1 uses is deleted, however old; a dry run deletes nothing
    dry = retention(defs, instance, keep_days=0, dry_run=True)
    assert dry["versions_to_delete"] == 0 and dry["rows_deleted"] == 0
    kept = retention(defs, instance, keep_days=0)
    assert kept["versions_deleted"] == 0 and column(kept["kept_for_models"], "used_by") == [f"{registry.model_name} v1"] * 5
    assert column(kept["deleted"], "version_id") == []

    # a version deleted from under a model (by hand): reproducing that model names the day
    catalog = warehouse.versions(assets=["flight_features"], days=[CORRECTED])
    warehouse.delete_versions(catalog[catalog["superseded_at"].notna()])
    with pytest.raises(DataProblem, match=rf"{CORRECTED} \(version {first[CORRECTED][0]}: deleted"):
        reproduce("1", registry=registry, warehouse=warehouse)
    assert reproduce_main(["1"]) == 2 and reproduce_main(["99"]) == 2  # and a version that does not exist

    # once no registered version uses them, the superseded versions past the retention go
    registry.client.delete_model_version(registry.model_name, "1")
    current_before = warehouse.read(flight_features, DAYS)
    gone = retention(defs, instance, keep_days=0)
    assert gone["versions_deleted"] == 4 and gone["rows_deleted"] > 2 * len(corrected)  # raw and validated
    assert sorted(column(gone["deleted"], "asset")) == ["raw_flights", "raw_weather", "validated_flights", "validated_weather"]
    assert set(column(gone["deleted"], "partition_date")) == {CORRECTED}
    assert len(warehouse.read(flight_features, DAYS)) == len(current_before)  # current versions untouched
    statuses = [r["status"].split()[0] for r in history([CORRECTED], registry=registry, warehouse=warehouse)[CORRECTED]]
    assert statuses.count("deleted") == 5 and statuses.count("current") == 5
    assert retention(defs, instance, keep_days=0)["versions_deleted"] == 0  # nothing left to delete

    # days that do not exist, or were never ingested, are named
    assert history_main(["2013-02-30"]) == 2
    assert history_main(["0123456789ab"]) == 2  # no such version id
    assert history([meta["ingestion_id"]], registry=registry, warehouse=warehouse).keys() == {CORRECTED}
    assert history_main(["2013-07-30", CORRECTED]) == 2
    assert history_main([CORRECTED]) == 0
