"""Versions of a day (no Dagster): the SQL behind `day_versions` and the `_history` tables.

A write of a day by an asset makes a new version of it: a new id, the content hash of its rows,
what it was built from. In the writer's transaction, the version it replaces is marked superseded
and its rows move from the current tables into their `_history` twins; the current tables keep
holding the current versions only. Nothing here commits: the caller's transaction does.

SQLite admits one writer at a time and PostgreSQL's writers of a day wait on an advisory lock
(`resources.warehouse.PartitionWriter`), so the partial unique index of `day_versions` (one
current version per asset and day) is never hit by our own writers; it guards the invariant.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pandas as pd
from sqlalchemy import Table, and_, select, union_all, update

from resources.schemas import VERSIONED_ASSETS, day_versions, history_tables, model_registries


@dataclass(frozen=True)
class DayVersion:
    """A new version of one day of an asset: its content hash and the facts its history lists."""

    content_hash: str
    source_file: str | None = None
    rows_in: int | None = None
    rows_valid: int | None = None
    rows_quarantined: int | None = None
    inputs: tuple[str, ...] = ()  # the version ids it was built from (e.g. the raw day's ingestion)


@dataclass(frozen=True)
class WrittenVersions:
    """The versions one write made (day -> id) and the ones they superseded (day -> id)."""

    ids: dict[str, str]
    superseded: dict[str, str] = field(default_factory=dict)


class InputChanged(RuntimeError):
    """A day of a step's input was written again between the step's read and its write: what it
    built is of a superseded version, so nothing is written. Transient (not a `DataProblem`): the
    step's retry policy runs it again, and it reads the new version."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def new_version_id() -> str:
    return uuid.uuid4().hex[:12]


def add_versions(conn, asset: str, versions: Mapping[str, DayVersion], run_id: str | None) -> WrittenVersions:
    """Supersede the asset's current versions of these days and add the new ones.

    The first statement is a write (an UPDATE ... RETURNING): on SQLite the transaction takes the
    write lock before it reads anything, so it never has to upgrade a read snapshot another writer
    has made stale."""
    if asset not in VERSIONED_ASSETS:
        raise ValueError(f"{asset!r} is not a versioned asset ({sorted(VERSIONED_ASSETS)})")
    days = sorted(versions)
    now = now_iso()
    superseded = dict(
        (day, vid) for vid, day in conn.execute(
            update(day_versions)
            .where(day_versions.c.asset == asset, day_versions.c.partition_date.in_(days),
                   day_versions.c.superseded_at.is_(None))
            .values(superseded_at=now)
            .returning(day_versions.c.version_id, day_versions.c.partition_date)
        )
    )
    ids = {day: new_version_id() for day in days}
    conn.execute(day_versions.insert(), [
        {"version_id": ids[day], "asset": asset, "partition_date": day, "content_hash": v.content_hash,
         "created_at": now, "run_id": run_id, "source_file": v.source_file, "rows_in": v.rows_in,
         "rows_valid": v.rows_valid, "rows_quarantined": v.rows_quarantined, "inputs": json.dumps(list(v.inputs))}
        for day, v in ((d, versions[d]) for d in days)
    ])
    return WrittenVersions(ids, superseded)


def move_to_history(conn, table: Table, days: Sequence[str], dataset: str | None) -> None:
    """The current rows of these days (of `dataset`) into the history twin, then out of `table`."""
    where = [table.c.partition_date.in_(list(days))]
    if dataset is not None:
        where.append(table.c.dataset == dataset)
    history = history_tables[table.name]
    names = [c.name for c in table.columns]
    conn.execute(history.insert().from_select(names, select(*[table.c[n] for n in names]).where(*where)))
    conn.execute(table.delete().where(*where))


def rows_of_versions(table: Table, version_ids: Mapping[str, str], columns: Sequence[str]):
    """SELECT of the rows of the given versions (day -> id), wherever they are (current or history)."""
    days, ids = sorted(version_ids), sorted(set(version_ids.values()))
    parts = []
    for source in (table, history_tables[table.name]):
        parts.append(select(*[source.c[c] for c in columns])
                     .where(source.c.partition_date.in_(days), source.c.version_id.in_(ids)))
    return union_all(*parts)


CATALOG_COLUMNS = [c.name for c in day_versions.columns]


def catalog(conn, assets: Iterable[str] | None = None, days: Iterable[str] | None = None,
            version_ids: Iterable[str] | None = None) -> pd.DataFrame:
    """Catalog rows (every version, current or not, deleted or not), oldest first."""
    stmt = select(day_versions)
    if assets is not None:
        stmt = stmt.where(day_versions.c.asset.in_(list(assets)))
    if days is not None:
        stmt = stmt.where(day_versions.c.partition_date.in_(list(days)))
    if version_ids is not None:
        stmt = stmt.where(day_versions.c.version_id.in_(list(version_ids)))
    rows = conn.execute(stmt.order_by(day_versions.c.partition_date, day_versions.c.created_at)).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=CATALOG_COLUMNS)


def delete_versions(conn, rows: pd.DataFrame) -> int:
    """Delete the rows of superseded versions (catalog rows `rows`) from the history tables and
    mark them deleted; a current version is never touched. Returns the data rows deleted."""
    deleted = 0
    now = now_iso()
    for asset, group in rows.groupby("asset"):
        if group["superseded_at"].isna().any():
            raise ValueError(f"{asset}: refusing to delete a current version")
        ids = group["version_id"].tolist()
        for table, _ in VERSIONED_ASSETS[asset]:
            history = history_tables[table.name]
            for start in range(0, len(ids), 500):
                deleted += conn.execute(history.delete().where(history.c.version_id.in_(ids[start:start + 500]))).rowcount
        for start in range(0, len(ids), 500):
            conn.execute(update(day_versions).where(and_(day_versions.c.version_id.in_(ids[start:start + 500]),
                                                          day_versions.c.superseded_at.is_not(None)))
                         .values(deleted_at=now))
    return deleted


def changed_inputs(conn, asset: str, read: Mapping[str, str | None], days: Sequence[str]) -> list[str]:
    """The days of `days` whose current version of `asset` is not the one `read` names (day ->
    version id read; a day missing from it: none was read), each said as day, both versions."""
    stmt = (select(day_versions.c.partition_date, day_versions.c.version_id)
            .where(day_versions.c.asset == asset, day_versions.c.partition_date.in_(list(days)),
                   day_versions.c.superseded_at.is_(None)))
    now = dict(tuple(r) for r in conn.execute(stmt))
    return [f"{day} (read version {read.get(day) or 'none'}, now current {now.get(day) or 'none'})"
            for day in sorted(days) if read.get(day) != now.get(day)]


def record_registry(conn, registry_id: str, tracking_uri: str) -> None:
    """The registry `registry_id` (at `tracking_uri`, as displayed) is one the warehouse's versions
    are recorded against: added, or its last time and address updated."""
    now = now_iso()
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(model_registries).values(registry_id=registry_id, tracking_uri=tracking_uri,
                                           first_recorded_at=now, last_recorded_at=now)
    conn.execute(stmt.on_conflict_do_update(index_elements=[model_registries.c.registry_id],
                                            set_={"tracking_uri": tracking_uri, "last_recorded_at": now}))


def registries(conn) -> dict[str, str]:
    """registry id -> its tracking URI (as displayed), of every registry versions were recorded against."""
    return dict(tuple(r) for r in conn.execute(select(model_registries.c.registry_id, model_registries.c.tracking_uri)
                                              .order_by(model_registries.c.first_recorded_at)))
