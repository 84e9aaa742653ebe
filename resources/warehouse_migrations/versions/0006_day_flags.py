"""Days flagged as a broken feed (`day_flags`).

A feed incident that still passes the row suites (a weather source lost, labels late) writes its
day; retraining on it would bake the bug into the next model. The check that notices it flags the
day here, and every training window and retrain decision leaves a flagged day out until a new
version of the day passes the check or a person releases it (`release_day_job`).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "day_flags",
        sa.Column("partition_date", sa.String(10), primary_key=True),
        sa.Column("asset", sa.String(32), primary_key=True),
        sa.Column("check_name", sa.String(64), primary_key=True),
        sa.Column("severity", sa.String(8), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("flagged_at", sa.String(32), nullable=False),
        sa.Column("run_id", sa.String(64)),
        sa.Column("cleared_at", sa.String(32)),
        sa.Column("released_at", sa.String(32)),
        sa.Column("released_by", sa.Text()),
        sa.Column("release_reason", sa.Text()),
    )


def downgrade() -> None:
    op.drop_table("day_flags")
