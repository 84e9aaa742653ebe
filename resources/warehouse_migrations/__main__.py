"""A new revision of the warehouse schema, written from what resources/schemas.py has that the
head revision does not (alembic's autogenerate, against a scratch SQLite warehouse at the head):

    python -m resources.warehouse_migrations "add served_predictions.latency_ms"

It writes versions/NNNN_<message>.py (the next number) and prints its path. Read it before
committing: autogenerate does not see everything (a renamed column comes out as a drop and an
add, a new NOT NULL column needs a value for the rows there are), and a PostgreSQL-only option
is only written if resources/schemas.py declares it. The compare test
(tests/integration/test_warehouse_migrations.py) then checks that head == resources/schemas.py.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from sqlalchemy import create_engine

from resources import warehouse_migrations as migrations


def new_revision(message: str) -> Path:
    from alembic import command

    number = f"{int(migrations.head()) + 1:04d}"
    with tempfile.TemporaryDirectory() as scratch:
        engine = create_engine(f"sqlite:///{Path(scratch) / 'head.db'}")
        migrations.upgrade(engine)
        with engine.begin() as conn:
            script = command.revision(migrations.config(conn), message, autogenerate=True, rev_id=number)
        engine.dispose()
    return Path(script.path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Write a new revision of the warehouse schema from resources/schemas.py.")
    parser.add_argument("message", help="what the revision changes (also its file name)")
    print(new_revision(parser.parse_args(argv).message))
    return 0


if __name__ == "__main__":
    sys.exit(main())
