"""Which model versions use which data versions, and what the retention may delete."""

import json
from datetime import UTC, datetime

import pandas as pd

from assets.day_history import history_rows, model_usage, retention_candidates
from resources.day_versions import CATALOG_COLUMNS
from resources.records import ModelRecord, Tag

DAY, OTHER = "2013-06-03", "2013-06-04"


def version(vid, asset, day, created, superseded=None, deleted=None, inputs=(), digest="h"):
    row = dict.fromkeys(CATALOG_COLUMNS)
    row.update(version_id=vid, asset=asset, partition_date=day, content_hash=digest, created_at=created,
               superseded_at=superseded, deleted_at=deleted, inputs=json.dumps(list(inputs)))
    return row


CATALOG = pd.DataFrame([
    version("raw1", "raw_flights", DAY, "2026-01-01T00:00:00+00:00", superseded="2026-01-05T00:00:00+00:00"),
    version("val1", "validated_flights", DAY, "2026-01-01T00:01:00+00:00", superseded="2026-01-05T00:01:00+00:00",
            inputs=["raw1"]),
    version("fea1", "flight_features", DAY, "2026-01-01T00:02:00+00:00", superseded="2026-01-05T00:02:00+00:00",
            inputs=["val1"], digest="old"),
    version("raw2", "raw_flights", DAY, "2026-01-05T00:00:00+00:00"),
    version("val2", "validated_flights", DAY, "2026-01-05T00:01:00+00:00", inputs=["raw2"]),
    version("fea2", "flight_features", DAY, "2026-01-05T00:02:00+00:00", inputs=["val2"], digest="new"),
    # another day, ingested twice, its first version used by nobody
    version("raw3", "raw_flights", OTHER, "2026-01-01T00:00:00+00:00", superseded="2026-01-02T00:00:00+00:00"),
    version("raw4", "raw_flights", OTHER, "2026-01-02T00:00:00+00:00"),
], columns=CATALOG_COLUMNS)


def record(number: str, ids: dict | None = None, hashes: dict | None = None) -> ModelRecord:
    days = sorted((ids or hashes or {}).keys())
    tags = {Tag.PARTITIONS: json.dumps({"train": days}), Tag.DATA_VERSIONS: json.dumps(hashes or {}),
            **({Tag.DATA_VERSION_IDS: json.dumps(ids)} if ids else {})}
    return ModelRecord.from_tags("m", number, "run", tags)


def test_a_model_uses_the_feature_versions_it_read_and_what_they_were_built_from():
    usage = model_usage([record("1", ids={DAY: "fea1"}), record("2", ids={DAY: "fea2"})], CATALOG)
    assert usage == {"fea1": ["m v1"], "val1": ["m v1"], "raw1": ["m v1"],
                     "fea2": ["m v2"], "val2": ["m v2"], "raw2": ["m v2"]}


def test_a_model_that_recorded_only_content_hashes_uses_the_versions_with_those_hashes():
    assert set(model_usage([record("1", hashes={DAY: "old"})], CATALOG)) == {"fea1", "val1", "raw1"}


def test_the_retention_deletes_old_superseded_unused_versions_only():
    usage = model_usage([record("1", ids={DAY: "fea1"})], CATALOG)
    now = datetime(2026, 1, 10, tzinfo=UTC)
    assert retention_candidates(CATALOG, usage, 3, now)["version_id"].tolist() == ["raw3"]  # not used, superseded 8 d ago
    assert retention_candidates(CATALOG, usage, 30, now).empty  # not old enough
    assert retention_candidates(CATALOG, {}, 0, now)["version_id"].tolist() == ["raw1", "val1", "fea1", "raw3"]  # never current ones
    deleted = CATALOG.assign(deleted_at=CATALOG["version_id"].map({"raw3": "2026-01-09T00:00:00+00:00"}))
    assert "raw3" not in retention_candidates(deleted, {}, 0, now)["version_id"].tolist()  # deleted once


def test_a_days_history_lists_its_versions_upstream_first_with_their_users():
    usage = model_usage([record("1", ids={DAY: "fea1"})], CATALOG)
    rows = history_rows(CATALOG[CATALOG["partition_date"] == DAY], usage)
    assert [r["version"] for r in rows] == ["raw1", "raw2", "val1", "val2", "fea1", "fea2"]
    assert [r["used_by"] for r in rows] == ["m v1", "", "m v1", "", "m v1", ""]
    assert rows[0]["status"] == "superseded 2026-01-05 00:00:00 UTC" and rows[1]["status"] == "current"
    assert rows[2]["built_from"] == "raw1" and rows[0]["source_file"] == ""
