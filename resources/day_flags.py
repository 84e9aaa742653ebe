"""Days flagged as a broken feed: the SQL of `day_flags` (resources/schemas.py). No Dagster.

A flag is (day, asset, check): opened when the day's check fails, with what is wrong and where; cleared
when a later version of the day passes that check; released when a person, after review, says the
day may be trained on (who, why, when: `release_day_job`). A flag that is neither cleared nor
released is open: the day is left out of every training window and no retrain is started for it.

A release holds for that check on that day while the flag stands (the same data failing again on
a rebuild stays released); once the day passes the check, a later failure is a new incident.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import and_, select, update

from resources.day_versions import now_iso
from resources.schemas import day_flags


@dataclass(frozen=True)
class DayFlag:
    day: str
    check: str
    asset: str
    severity: str
    detail: str

    @property
    def said(self) -> str:
        return f"{self.asset} check `{self.check}` ({self.severity}) on {self.day}: {self.detail}"


def flag(conn, asset: str, check: str, details: Mapping[str, str], severity: str, run_id: str | None) -> None:
    """Open (or keep open, with the newest detail) the flag of `check` on each day of `details`."""
    if not details:
        return
    t, now = day_flags, now_iso()
    standing = {r.partition_date: r for r in conn.execute(
        select(t.c.partition_date, t.c.cleared_at).where(t.c.asset == asset, t.c.check_name == check,
                                                         t.c.partition_date.in_(list(details))))}
    for day, detail in details.items():
        values = {"severity": severity, "detail": detail[:4000], "run_id": run_id}
        this = (t.c.partition_date == day, t.c.asset == asset, t.c.check_name == check)
        if day not in standing:
            conn.execute(t.insert().values(partition_date=day, asset=asset, check_name=check, flagged_at=now, **values))
        elif standing[day].cleared_at is not None:  # passed since: a new incident, nobody has released it
            conn.execute(update(t).where(*this).values(
                flagged_at=now, cleared_at=None, released_at=None, released_by=None, release_reason=None, **values))
        else:  # still standing: the newest figures, its release (if any) kept
            conn.execute(update(t).where(*this).values(**values))


def clear(conn, asset: str, check: str, days: Sequence[str]) -> None:
    """The days' new versions passed the asset's `check`: their standing flags of it are cleared."""
    if days:
        t = day_flags
        conn.execute(update(t).where(t.c.asset == asset, t.c.check_name == check, t.c.partition_date.in_(list(days)),
                                     t.c.cleared_at.is_(None)).values(cleared_at=now_iso()))


def open_flags(conn, days: Sequence[str] | None = None) -> list[DayFlag]:
    """The open flags (neither cleared nor released) of `days` (all days: None), by day."""
    t = day_flags
    where = [t.c.cleared_at.is_(None), t.c.released_at.is_(None)]
    if days is not None:
        where.append(t.c.partition_date.in_(list(days)))
    stmt = (select(t.c.partition_date, t.c.check_name, t.c.asset, t.c.severity, t.c.detail)
            .where(and_(*where)).order_by(t.c.partition_date, t.c.asset, t.c.check_name))
    return [DayFlag(*row) for row in conn.execute(stmt)]


def release(conn, day: str, check: str | None, released_by: str, reason: str) -> list[DayFlag]:
    """A person releases the open flags of `day` (only `check`'s, if given) after review; returns
    what was released (nothing: no open flag matched)."""
    released = [f for f in open_flags(conn, [day]) if check in (None, f.check)]
    if released:
        t = day_flags
        for f in released:
            conn.execute(update(t).where(t.c.partition_date == day, t.c.asset == f.asset, t.c.check_name == f.check).values(
                released_at=now_iso(), released_by=released_by, release_reason=reason))
    return released


def history(conn, days: Sequence[str] | None = None) -> pd.DataFrame:
    """Every flag (open, cleared and released) of `days` (all: None), for an audit."""
    t = day_flags
    stmt = select(t).order_by(t.c.partition_date, t.c.check_name)
    if days is not None:
        stmt = stmt.where(t.c.partition_date.in_(list(days)))
    return pd.DataFrame([dict(r._mapping) for r in conn.execute(stmt)], columns=[c.name for c in t.columns])
