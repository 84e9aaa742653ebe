"""An index of the catalog by day and creation time.

Every read of the catalog (`resources.day_versions.catalog`, behind `Warehouse.versions`) asks
for days, not for an asset, and orders by (partition_date, created_at): the history of the days
written again (made on every write of such a day), the `history` CLI, the retention job's whole
catalog. The only index with partition_date led with asset, so each of those scanned the table
and sorted it; with this one they search the days and read them in order (SQLite's plan:
`SEARCH day_versions USING INDEX ix_day_versions_partition`, no temporary B-tree).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_day_versions_partition", "day_versions", ["partition_date", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_day_versions_partition", table_name="day_versions")
