"""Served rows the warehouse refused (`served_quarantine`).

The scoring server's recorder used to retry a refused batch whole: one row the driver would not
take (a NUL character on PostgreSQL) held every later row in memory until the bound dropped them.
It now splits a refused batch until the refused rows are alone, writes the rest, and keeps each
refused row here with the driver's reason and the row as JSON text (pipelines/serving/traffic.py).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "served_quarantine",
        sa.Column("partition_date", sa.String(10), nullable=False),
        sa.Column("served_at", sa.String(32), nullable=False),
        sa.Column("request_id", sa.String(36), nullable=False),
        sa.Column("row_in_request", sa.Integer(), nullable=False),
        sa.Column("model_version", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("row", sa.Text(), nullable=False),
    )
    op.create_index("ix_served_quarantine_partition", "served_quarantine", ["partition_date"])


def downgrade() -> None:
    op.drop_index("ix_served_quarantine_partition", table_name="served_quarantine")
    op.drop_table("served_quarantine")
