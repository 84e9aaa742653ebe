"""Table metadata (assets/asset_factory.py): rows as a Dagster table whose records the UI can parse
(plain values, no NaN) and a warehouse table as the standard `dagster/column_schema`."""

import json

import numpy as np
import pandas as pd
from dagster import TableMetadataValue, TableSchema

from assets.asset_factory import column_schema, table_metadata
from resources.schemas import flight_features, predictions


def test_rows_become_records_of_plain_values_in_the_given_columns_and_types():
    rows = [{"day": "2013-01-01", "rows": np.int64(3), "share": np.float64(0.25), "extra": "left out"},
            {"day": "2013-01-02", "rows": "", "share": float("nan")},  # missing numbers: None
            {"day": pd.NA, "share": float("inf")}]
    table = table_metadata(rows, {"day": "string", "rows": "int", "share": "float"}, {"share": "late flights"})
    assert isinstance(table, TableMetadataValue)
    assert [(c.name, c.type, c.description) for c in table.schema.columns] == [
        ("day", "string", None), ("rows", "int", None), ("share", "float", "late flights")]
    assert [r.data for r in table.records] == [{"day": "2013-01-01", "rows": 3, "share": 0.25},
                                               {"day": "2013-01-02", "rows": None, "share": None},
                                               {"day": None, "rows": None, "share": None}]
    assert all(type(r.data["rows"]) in (int, type(None)) for r in table.records)
    for r in table.records:  # what the UI does with each record: strict JSON, no NaN
        json.loads(json.dumps(r.data, allow_nan=False))


def test_column_types_follow_the_values_when_only_names_are_given():
    rows = [{"trial": 0, "kind": "window", "rate": 1, "refit": True, "when": pd.Timestamp("2013-01-01")},
            {"trial": 1, "kind": "tuning", "rate": 0.05, "refit": False, "when": None}]
    table = table_metadata(rows, ["trial", "kind", "rate", "refit", "when"])
    assert {c.name: c.type for c in table.schema.columns} == {
        "trial": "int", "kind": "string", "rate": "float", "refit": "bool", "when": "string"}
    assert table.records[0].data["when"] == "2013-01-01 00:00:00" and table.records[1].data["when"] is None
    assert table_metadata([], ["a"]).records == []


def test_a_warehouse_table_is_its_column_schema():
    schema = column_schema(predictions)
    assert isinstance(schema, TableSchema)
    assert [c.name for c in schema.columns] == [c.name for c in predictions.columns]
    by_name = {c.name: c for c in column_schema(flight_features).columns}
    assert by_name["is_late"].type == "INTEGER" and by_name["is_late"].constraints.nullable
    assert by_name["partition_date"].type == "VARCHAR(10)" and not by_name["partition_date"].constraints.nullable


def test_a_day_written_again_carries_its_history_as_a_table_and_says_when_the_registry_is_unreadable():
    from types import SimpleNamespace

    from assets.asset_factory import day_history_metadata
    from assets.day_history import HISTORY_COLUMNS
    from tests.unit.test_day_history import CATALOG, DAY, OTHER, record

    class Warehouse:
        def versions(self, days):
            return CATALOG[CATALOG["partition_date"].isin(days)]

    class Registry:
        def __init__(self, records=None):
            self.records = records

        def versions(self):
            if self.records is None:
                raise ConnectionError("registry down")
            return self.records

    written = SimpleNamespace(ids={DAY: "raw2", OTHER: "raw4", "2013-06-05": "raw5"}, superseded={DAY: "raw1", OTHER: "raw3"})
    meta = day_history_metadata(Warehouse(), Registry([record("1", ids={DAY: "fea1"})]), "raw_flights", written)
    assert meta["2013-06-05"] == {"version_id": "raw5", "supersedes": "none"}  # written once: no history
    history = meta[DAY]["day_history"]
    assert isinstance(history, TableMetadataValue) and [c.name for c in history.schema.columns] == HISTORY_COLUMNS
    assert {c.name: c.type for c in history.schema.columns}["rows_in"] == "int"
    assert [(r.data["version"], r.data["used_by"], r.data["rows_in"]) for r in history.records] == [("raw1", "m v1", None),
                                                                                                    ("raw2", "", None)]
    assert meta[DAY]["versions_of_day"] == 2 and meta[OTHER]["supersedes"] == "raw3"
    down = day_history_metadata(Warehouse(), Registry(), "raw_flights", written)[OTHER]["day_history"]
    assert [r.data["used_by"] for r in down.records] == ["unknown: the model registry could not be read (ConnectionError)"] * 2
