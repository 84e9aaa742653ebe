"""The MLflow registries the warehouse's versions were recorded against (`model_registries`).

A retrain records its registry's identity (a tag of the project's experiment) before it records
its window's versions there; the retention job refuses to delete against a registry the
warehouse does not name. A warehouse upgraded to it names none yet: the retention then checks the
registry by what its models record (resources/schemas.py, pipelines/orchestration/retention.py).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_registries",
        sa.Column("registry_id", sa.String(32), primary_key=True),
        sa.Column("tracking_uri", sa.Text(), nullable=False),
        sa.Column("first_recorded_at", sa.String(32), nullable=False),
        sa.Column("last_recorded_at", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("model_registries")
