"""The SQL warehouse: a SQLAlchemy engine (WAREHOUSE_URL, any SQLAlchemy URL) with explicit
table schemas.

Writing partitions replaces them in one transaction: readers see either the old or the new
rows of a day, never a mix, and a failure part-way leaves the tables as they were. The tables of
the lifecycle's days (raw, validated, quarantine, features) keep what they replace: each write
makes a new version of the day and the superseded one stays readable by its id
(`resources.day_versions`).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Engine, Float, Table, create_engine, event, func, make_url, select
from sqlalchemy.exc import OperationalError

from resources import day_flags, schemas, warehouse_migrations
from resources import day_versions as versions
from resources.day_versions import DayVersion, WrittenVersions
from resources.settings import settings


@functools.lru_cache(maxsize=8)
def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        from pathlib import Path

        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, future=True)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

    # the schema of this code: a new warehouse gets it, an older one is migrated in place (its
    # versions kept), one already at it costs a query (resources/warehouse_migrations)
    warehouse_migrations.upgrade(engine)
    return engine


def _insert(conn, table: Table, frame: pd.DataFrame) -> None:
    """Bulk insert through the driver's executemany (bound parameters, no SQL built from data).

    Skips SQLAlchemy's per-row parameter processing, which costs more than the database write
    for hundreds of thousands of rows.
    """
    cols = [c.name for c in table.columns if c.name in frame.columns]
    if conn.dialect.driver == "psycopg2":
        _insert_values_pages(conn, table, cols, _rows(frame, cols))
        return
    compiled = table.insert().compile(dialect=conn.dialect, column_keys=cols)
    if compiled.positiontup is not None:
        rows = _rows(frame, list(compiled.positiontup))
    else:
        rows = [dict(zip(cols, row, strict=True)) for row in _rows(frame, cols)]
    for start in range(0, len(rows), 50_000):
        conn.exec_driver_sql(str(compiled), rows[start : start + 50_000])


def _rows(frame: pd.DataFrame, cols: list[str]) -> list[tuple]:
    """The rows of `frame[cols]` as tuples of Python values, None for missing ones (built column
    by column: half the time of converting the frame and walking its rows)."""
    values = []
    for col in cols:
        series = frame[col]
        values.append(series.astype(object).where(series.notna(), None).tolist())
    return list(zip(*values, strict=True))


def _insert_values_pages(conn, table: Table, cols: list[str], rows: list[tuple]) -> None:
    """PostgreSQL: psycopg2's `executemany` sends one statement per row (a round trip each);
    `execute_values` sends pages of rows in one multi-row INSERT, with the values bound by the
    driver and the identifiers quoted by it, in the connection's transaction."""
    from psycopg2 import sql
    from psycopg2.extras import execute_values

    statement = sql.SQL("INSERT INTO {} ({}) VALUES %s").format(
        sql.Identifier(table.name), sql.SQL(", ").join(sql.Identifier(c) for c in cols))
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        execute_values(cursor, statement, rows, page_size=5000)
    finally:
        cursor.close()


def _fetch_frame(conn, stmt) -> pd.DataFrame:
    """The rows of a SELECT as a DataFrame, fetched through the driver's cursor: the statement is
    compiled by SQLAlchemy (bound parameters, the dialect's paramstyle), the rows come back as the
    driver's tuples, which skips building SQLAlchemy rows (a quarter of a 60-day read)."""
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    values = compiled.construct_params()
    params = tuple(values[k] for k in compiled.positiontup) if compiled.positiontup is not None else values
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute(str(compiled), params)
        columns = [d[0] for d in cursor.description]
        frame = pd.DataFrame(cursor.fetchall(), columns=columns)
    finally:
        cursor.close()
    # a float column whose values are all NULL (e.g. wind_gust on a calm day) comes back as objects:
    # typed by the table's declaration, as on every other day
    for column in stmt.selected_columns:
        if isinstance(column.type, Float) and column.name in frame and frame[column.name].dtype == object:
            frame[column.name] = frame[column.name].astype("float64")
    return frame


class PartitionWriter:
    """The writes of one transaction; created by `Warehouse.replace_partitions`."""

    def __init__(self, conn):
        self._conn = conn

    def replace(
        self,
        table: Table,
        partitions: Sequence[str],
        frame: pd.DataFrame,
        dataset: str | None = None,
    ) -> int:
        """Replace the rows of these days of a table that keeps no versions (scores, reports)."""
        if table.name in schemas.history_tables:
            raise ValueError(f"{table.name} keeps versions of its days: write it with `write_version`")
        self._lock([f"{table.name}/{dataset or ''}/{p}" for p in partitions])
        stmt = table.delete().where(table.c.partition_date.in_(list(partitions)))
        if dataset is not None:
            stmt = stmt.where(table.c.dataset == dataset)
        self._conn.execute(stmt)
        if len(frame):
            if dataset is not None and "dataset" not in frame.columns:
                frame = frame.assign(dataset=dataset)
            _insert(self._conn, table, frame)
        return len(frame)

    def write_version(self, asset: str, days: Mapping[str, DayVersion], frames: Mapping[Table, pd.DataFrame],
                      run_id: str | None = None) -> WrittenVersions:
        """A new version of each of `days` of `asset`: the rows of `frames` (one frame per table
        the asset writes, `schemas.VERSIONED_ASSETS`) become current; the versions they replace
        are marked superseded and their rows move to the history tables, all in this transaction."""
        pairs = schemas.VERSIONED_ASSETS[asset]
        if set(frames) != {t for t, _ in pairs}:
            raise ValueError(f"{asset} writes {[t.name for t, _ in pairs]}, got {[t.name for t in frames]}")
        self._lock([f"versions/{asset}/{d}" for d in days])
        written = versions.add_versions(self._conn, asset, days, run_id)
        for table, dataset in pairs:
            versions.move_to_history(self._conn, table, list(days), dataset)
            frame = frames[table]
            if len(frame):
                extra = {"version_id": frame["partition_date"].map(written.ids)}
                if dataset is not None:
                    extra["dataset"] = dataset
                unknown = extra["version_id"].isna()
                if unknown.any():
                    raise ValueError(f"{table.name}: rows of days not in the version being written: "
                                     f"{sorted(frame.loc[unknown, 'partition_date'].unique())[:5]}")
                _insert(self._conn, table, frame.assign(**extra))
        return written

    def require_inputs(self, step: str, inputs: Mapping[str, Mapping[str, str | None]], days: Sequence[str]) -> None:
        """Raise `InputChanged` (nothing of this transaction is written) if a day of an input asset
        (asset -> day -> the version read) is no longer the version the step read. Called after the
        step's own write, so the transaction holds SQLite's write lock; on PostgreSQL it takes the
        inputs' writers' locks of these days: a new version of them waits for this transaction."""
        self._lock([f"versions/{asset}/{d}" for asset in inputs for d in days])
        changed = [f"{asset} {c}" for asset, read in inputs.items() for c in versions.changed_inputs(self._conn, asset, read, days)]
        if changed:
            raise versions.InputChanged(f"{step}: its input was written again while it ran: {'; '.join(changed[:10])}"
                                        f"{'; …' if len(changed) > 10 else ''}; nothing was written, the retry reads the new version")

    def _lock(self, keys: Iterable[str]) -> None:
        """Serialize writers of the same days until this transaction ends.

        Without it, two runs replacing the same day on PostgreSQL (READ COMMITTED) both delete
        the old rows and both insert: the second DELETE cannot see the first run's rows, which
        were committed after its snapshot, so the day ends up doubled (and two versions would
        both be current). A transaction-scoped advisory lock per key (asset or table, dataset,
        day), taken in sorted order (no deadlock), makes the second writer wait and then replace
        what the first wrote. SQLite needs nothing: it admits one writer at a time for the
        whole database.
        """
        if self._conn.dialect.name != "postgresql":
            return
        for key in sorted(keys):
            self._conn.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(key, 0))))

    def count_by_partition(
        self, table: Table, partitions: Sequence[str], dataset: str | None = None
    ) -> dict[str, int]:
        return _count_by_partition(self._conn, table, partitions, dataset)


def _count_by_partition(conn, table: Table, partitions: Sequence[str], dataset: str | None):
    stmt = (
        select(table.c.partition_date, func.count())
        .where(table.c.partition_date.in_(list(partitions)))
        .group_by(table.c.partition_date)
    )
    if dataset is not None:
        stmt = stmt.where(table.c.dataset == dataset)
    counts = {p: 0 for p in partitions}
    counts.update({p: n for p, n in conn.execute(stmt)})
    return counts


def _content_columns(table: Table, with_version: bool) -> list:
    return list(table.columns) if with_version else [table.c[n] for n in schemas.content_columns(table)]


class WarehouseUnavailable(RuntimeError):
    """The warehouse cannot be reached or used right now (connection refused, file not openable,
    locked past the busy timeout): transient, so the step's retry policy tries again."""


@dataclass(frozen=True)
class Warehouse:
    """SQL warehouse reached through SQLAlchemy (SQLite under data/ by default): `Warehouse()`
    follows the setting WAREHOUSE_URL, read at each call; `Warehouse(url=...)` names one. No
    Dagster: the steps get it through the thin resource in resources/dagster_resources.py."""

    url: str | None = None

    @property
    def resolved_url(self) -> str:
        return self.url or settings().warehouse_url

    @property
    def engine(self) -> Engine:
        with self._reachable():
            return _engine(self.resolved_url)

    @property
    def display_url(self) -> str:
        return make_url(self.resolved_url).render_as_string(hide_password=True)

    @contextlib.contextmanager
    def _reachable(self):
        try:
            yield
        except OperationalError as exc:
            raise WarehouseUnavailable(
                f"warehouse {self.display_url} unreachable: {str(exc.orig or exc).strip()}"
            ) from exc

    @contextlib.contextmanager
    def replace_partitions(self) -> Iterator[PartitionWriter]:
        """One transaction: every `replace` inside commits together or not at all."""
        with self._reachable(), self.engine.begin() as conn:
            yield PartitionWriter(conn)

    def append(self, table: Table, frame: pd.DataFrame) -> None:
        """Insert rows in one transaction (an append-only table such as `served_predictions`)."""
        with self._reachable(), self.engine.begin() as conn:
            _insert(conn, table, frame)

    def read(
        self,
        table: Table,
        partitions: Iterable[str],
        columns: Sequence[str] | None = None,
        dataset: str | None = None,
        with_version: bool = False,
    ) -> pd.DataFrame:
        """The current rows of these days (`version_id` only if asked for)."""
        cols = [table.c[c] for c in columns] if columns else _content_columns(table, with_version)
        stmt = select(*cols).where(table.c.partition_date.in_(list(partitions)))
        if dataset is not None:
            stmt = stmt.where(table.c.dataset == dataset)
        with self._reachable(), self.engine.connect() as conn:
            return _fetch_frame(conn, stmt)

    def read_current_versions(self, table: Table, partitions: Sequence[str]) -> tuple[pd.DataFrame, dict[str, str]]:
        """The current rows of these days (without `version_id`) and day -> the version they are:
        the version read, or the catalog's current one for a day without rows (a versioned asset's
        own table, e.g. `validated_flights`: the ids a version built from it names as its inputs)."""
        asset = next(a for a, pairs in schemas.VERSIONED_ASSETS.items() if (table, None) in pairs)
        ids = {d: vid for d, (vid, _) in self.current_versions(asset, partitions).items()}
        frame = self.read(table, partitions, with_version=True)
        ids.update(frame.groupby("partition_date")["version_id"].first().to_dict())  # what was read
        return frame.drop(columns=["version_id"]), ids

    def read_versions(self, table: Table, version_ids: Mapping[str, str],
                      columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The rows of the given versions (day -> version id), current or superseded."""
        names = list(columns) if columns else schemas.content_columns(table)
        with self._reachable(), self.engine.connect() as conn:
            return _fetch_frame(conn, versions.rows_of_versions(table, version_ids, names))

    def versions(self, assets: Iterable[str] | None = None, days: Iterable[str] | None = None,
                 version_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """Catalog rows of `day_versions` (current, superseded and deleted), oldest first."""
        with self._reachable(), self.engine.connect() as conn:
            return versions.catalog(conn, assets, days, version_ids)

    def current_versions(self, asset: str, days: Sequence[str]) -> dict[str, tuple[str, str]]:
        """day -> (version id, content hash) of the asset's current version of each day."""
        stmt = (select(schemas.day_versions.c.partition_date, schemas.day_versions.c.version_id,
                       schemas.day_versions.c.content_hash)
                .where(schemas.day_versions.c.asset == asset, schemas.day_versions.c.partition_date.in_(list(days)),
                       schemas.day_versions.c.superseded_at.is_(None)))
        with self._reachable(), self.engine.connect() as conn:
            return {day: (vid, digest) for day, vid, digest in conn.execute(stmt)}

    def record_registry(self, registry_id: str, tracking_uri: str) -> None:
        """Record that versions of this warehouse are recorded against the registry `registry_id`."""
        with self._reachable(), self.engine.begin() as conn:
            versions.record_registry(conn, registry_id, tracking_uri)

    def registries(self) -> dict[str, str]:
        """registry id -> tracking URI (as displayed) of the registries versions were recorded against."""
        with self._reachable(), self.engine.connect() as conn:
            return versions.registries(conn)

    def delete_versions(self, rows: pd.DataFrame) -> int:
        """Delete the rows of these superseded versions (catalog rows) in one transaction."""
        with self._reachable(), self.engine.begin() as conn:
            return versions.delete_versions(conn, rows)

    def count_by_partition(
        self, table: Table, partitions: Sequence[str], dataset: str | None = None
    ) -> dict[str, int]:
        with self._reachable(), self.engine.connect() as conn:
            return _count_by_partition(conn, table, partitions, dataset)

    def rows_by(self, table: Table, partitions: Sequence[str], column: str) -> pd.DataFrame:
        """(partition_date, `column`) -> rows of `table` over `partitions`, counted in the database."""
        stmt = (
            select(table.c.partition_date, table.c[column], func.count().label("rows"))
            .where(table.c.partition_date.in_(list(partitions)))
            .group_by(table.c.partition_date, table.c[column])
        )
        with self._reachable(), self.engine.connect() as conn:
            return _fetch_frame(conn, stmt)

    def days_scored_by(self, version: str, first: int | None = None) -> list[str]:
        """The days whose stored batch scores (`predictions`) are by model `version`, oldest first
        (only the `first` ones, if given)."""
        t = schemas.predictions
        stmt = (select(t.c.partition_date).where(t.c.model_version == str(version)).distinct()
                .order_by(t.c.partition_date).limit(first))
        with self._reachable(), self.engine.connect() as conn:
            return [str(d) for d in conn.execute(stmt).scalars()]

    def served_by_flight(self, flight_days: Sequence[str]) -> pd.DataFrame:
        """The scoring server's answers by flight (`/predict`) for flights of `flight_days` (by
        their scheduled departure, whatever day they were served on)."""
        t = schemas.served_predictions
        stmt = (select(t.c.carrier, t.c.flight, t.c.origin, t.c.dest, t.c.scheduled_departure, t.c.probability_late,
                       t.c.model_version, t.c.in_schedule)
                .where(t.c.flight.is_not(None), func.substr(t.c.scheduled_departure, 1, 10).in_(list(flight_days))))
        with self._reachable(), self.engine.connect() as conn:
            return _fetch_frame(conn, stmt)

    # --- days flagged as a broken feed (resources/day_flags.py) ---

    def record_feed_verdicts(self, asset: str, check: str, failed: Mapping[str, str], passed: Sequence[str],
                             severity: str, run_id: str | None) -> None:
        """A feed check's verdicts of some days: the failed ones flagged (day -> what is wrong and
        where), the passed ones' standing flags of it cleared; one transaction."""
        with self._reachable(), self.engine.begin() as conn:
            day_flags.flag(conn, asset, check, failed, severity, run_id)
            day_flags.clear(conn, asset, check, [d for d in passed if d not in failed])

    def open_flags(self, days: Sequence[str] | None = None) -> list[day_flags.DayFlag]:
        with self._reachable(), self.engine.connect() as conn:
            return day_flags.open_flags(conn, days)

    def release_flags(self, day: str, check: str | None, released_by: str, reason: str) -> list[day_flags.DayFlag]:
        with self._reachable(), self.engine.begin() as conn:
            return day_flags.release(conn, day, check, released_by, reason)

    def flag_history(self, days: Sequence[str] | None = None) -> pd.DataFrame:
        with self._reachable(), self.engine.connect() as conn:
            return day_flags.history(conn, days)

    def latest_partition(self, table: Table) -> str | None:
        """The newest day `table` holds, or None."""
        with self._reachable(), self.engine.connect() as conn:
            return conn.execute(select(func.max(table.c.partition_date))).scalar()
