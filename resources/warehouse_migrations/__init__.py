"""Schema migrations of the SQL warehouse (Alembic): `upgrade(engine)` brings a warehouse to the
schema of this code the first time a process opens it (`resources.warehouse._engine`).

The revisions are in versions/ (0001: the baseline, the schema of the last code without
migrations; each later one a change of resources/schemas.py, which always equals the head:
tests/integration/test_warehouse_migrations.py compares them). The Alembic configuration is
built here (`config()`, `script_location` = this folder); there is no alembic.ini.

What a warehouse gets, by what it holds:

- at the head revision: nothing (one query of `alembic_version`);
- nothing of the warehouse (a new database): every revision, up to the head;
- the warehouse's tables but no `alembic_version` (made by the code before migrations): it is
  checked against the baseline, stamped at 0001, then upgraded. A baseline table or index it
  lacks is created (as `create_all` did on every start); a lacking column, or a column of
  another type or nullability, is a `DataProblem` naming them: no migration can know the values
  of the rows it already has. Tables, columns and indexes of its own are left alone;
- an older revision: upgraded in place, its rows and versions kept;
- a revision this code does not know (upgraded by newer code): a `DataProblem` naming the URL
  and both revisions; nothing is changed.

Two processes opening a new warehouse at once: the check and the upgrade run in one transaction
that first takes a lock, so the second waits and then finds the head. PostgreSQL: a
transaction-level advisory lock (DDL is transactional there, so a failed upgrade leaves nothing).
SQLite: `BEGIN IMMEDIATE`, the database's write lock, taken before anything is read; the second
process waits for it under the engine's busy timeout (30 s). SQLite commits its DDL with the
transaction too, so there as well a failure part-way leaves the database as it was.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path

from sqlalchemy import Engine, func, inspect, select
from sqlalchemy.exc import DBAPIError

from resources.errors import DataProblem

FOLDER = Path(__file__).resolve().parent
BASELINE = "0001"
_LOCK_KEY = "warehouse schema migration"  # the advisory lock's key (PostgreSQL)
# alembic runs its commands through module-level proxies (`alembic.context`, `alembic.op`): two
# threads of a process must not migrate at once, even two databases
_ONE_AT_A_TIME = threading.Lock()


def config(connection=None):
    """Alembic's configuration of the warehouse's migrations; the commands it is given to run in
    `connection` (the caller's transaction) when there is one."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(FOLDER))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@functools.lru_cache(maxsize=1)
def _script():
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(config())


def head() -> str:
    """The newest revision: the schema of resources/schemas.py."""
    return _script().get_current_head()


def revisions() -> list[str]:
    """Every revision, oldest first."""
    return [s.revision for s in reversed(list(_script().walk_revisions()))]


def baseline_metadata():
    """The tables and indexes of the baseline revision (a new MetaData)."""
    return _script().get_revision(BASELINE).module.baseline_metadata()


def current(engine: Engine) -> tuple[str, ...] | None:
    """The revision(s) `alembic_version` holds, None without the table: one query."""
    with engine.connect() as conn:
        try:
            return tuple(conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars())
        except DBAPIError as exc:
            if exc.connection_invalidated:  # the database went away: not a missing table
                raise
            return None


def upgrade(engine: Engine) -> None:
    """Bring the warehouse to the head revision (see the module's docstring)."""
    if current(engine) == (head(),):
        return
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    url = engine.url.render_as_string(hide_password=True)
    with _ONE_AT_A_TIME, engine.connect() as conn:
        _lock(conn)
        found = MigrationContext.configure(conn).get_current_heads()  # again, now that no one else migrates
        unknown = [r for r in found if r not in revisions()]
        if unknown:
            raise DataProblem(  # retrying cannot fix it
                f"warehouse {url} is at schema revision {', '.join(unknown)}, which this code does not know "
                f"(its newest is {head()}): it was upgraded by newer code (or is another application's database); "
                "run that code against it, or use another warehouse")
        if not found and set(inspect(conn).get_table_names()) & set(baseline_metadata().tables):
            _adopt(conn, url)
            command.stamp(config(conn), BASELINE)
        command.upgrade(config(conn), "head")
        conn.commit()


def _lock(conn) -> None:
    """Begin the migration's transaction holding a lock no other migration of this database can
    take before it ends (the module's docstring)."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(_LOCK_KEY, 0))))
    elif conn.dialect.name == "sqlite":
        # pysqlite begins no transaction before DDL: this one takes the write lock now
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _adopt(conn, url: str) -> None:
    """A warehouse made before migrations: check it against the baseline; create the baseline's
    tables and indexes it lacks; refuse what no migration can fill in."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    baseline = baseline_metadata()
    diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), baseline)
    tables, indexes, lacking, other = [], [], {}, []
    for diff in diffs:
        for change in diff if isinstance(diff, list) else [diff]:  # a column's changes come as a list
            kind = change[0]
            if kind == "add_table":
                tables.append(change[1])
            elif kind == "add_index":
                indexes.append(change[1])
            elif kind == "add_column":
                lacking.setdefault(change[2], []).append(change[3].name)
            elif kind == "modify_type":
                other.append(f"{change[2]}.{change[3]} is {change[5]}, not {change[6]}")
            elif kind == "modify_nullable":
                other.append(f"{change[2]}.{change[3]} is {'' if change[5] else 'NOT '}NULL, not {'' if change[6] else 'NOT '}NULL")
            elif not kind.startswith("remove_"):  # its own tables, columns, indexes: left alone
                other.append(str(change)[:120])
    problems = [f"table {t} lacks columns {cols}" for t, cols in lacking.items()] + other
    if problems:
        raise DataProblem(
            f"warehouse {url} has no schema revision (no alembic_version) and differs from the baseline (revision "
            f"{BASELINE}) in what no migration can fill in: {'; '.join(problems)}. It was made by code older than "
            "the baseline: add what it lacks by hand and open it again, or use a new warehouse")
    baseline.create_all(conn, tables=tables, checkfirst=False)
    created = {t.name for t in tables}
    for index in indexes:
        if index.table.name not in created:
            index.create(conn)
