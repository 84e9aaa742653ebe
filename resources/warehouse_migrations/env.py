"""Alembic's environment for the warehouse, run by alembic's commands (`alembic.command`).

`resources.warehouse_migrations` hands over the connection (`config.attributes["connection"]`),
already inside the transaction that holds the migration lock: the migrations run in it and the
caller commits. Without one, `sqlalchemy.url` of the config is opened (the revision helper,
`python -m resources.warehouse_migrations`). The target metadata is resources/schemas.py, so
autogenerate compares a database with it.
"""

from alembic import context
from sqlalchemy import create_engine

from resources.schemas import metadata

config = context.config


def run(connection) -> None:
    # render_as_batch: autogenerate writes ALTERs as batch operations, which SQLite can carry out
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


if config.attributes.get("connection") is not None:
    run(config.attributes["connection"])
else:
    with create_engine(config.get_main_option("sqlalchemy.url")).begin() as conn:
        run(conn)
