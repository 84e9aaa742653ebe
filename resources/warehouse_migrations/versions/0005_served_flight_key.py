"""The flight a served prediction was for (`served_predictions`).

`POST /predict` takes a flight by what a caller knows (carrier, flight number, origin,
destination, scheduled departure) and computes its features in the server
(pipelines/serving/by_flight.py). Each such answer is recorded with the flight's key, so what was
served can be matched to the flight's arrival; rows sent as features to /invocations leave them
empty.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COLUMNS = [("flight", sa.Integer()), ("scheduled_departure", sa.String(19)), ("tailnum", sa.Text()),
           ("features_as_of", sa.String(19)), ("in_schedule", sa.Boolean())]


def upgrade() -> None:
    with op.batch_alter_table("served_predictions") as batch:
        for name, kind in COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("served_predictions") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
