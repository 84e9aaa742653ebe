"""Served traffic to the warehouse: every flight the scoring server scored (its features, the
probability it answered, the version that answered, when), in batches, off the request path.

The request handler only appends the raw request and response bytes to a queue (microseconds); a
background thread parses them and writes a batch every FLIGHTS_SERVE_RECORD_SECONDS (table
`served_predictions`). What the writer meets is told apart:

- the warehouse is down (no connection, dropped, locked): the rows are kept and written later;
- the warehouse refuses rows (a value its driver or a constraint will not take: a NUL character
  on PostgreSQL, an unpaired surrogate, a NaN where a value is required): the batch is split in
  halves until the refused rows are alone; those go to `served_quarantine` with the driver's
  reason and the row as JSON, every other row is written. One bad request never holds the others.

What is kept in memory (requests not parsed yet, rows not written yet) is bounded in bytes of the
requests as they came (FLIGHTS_SERVE_RECORD_MAX_MB); past it the oldest are dropped and counted
(the server's `/serving` status shows every count): recording never slows or fails a request.

A row's `partition_date` is the day it was served, by the server's clock: in the replay
(FLIGHTS_SOURCE=replay) the replay clock's 'today', the day after the newest day with features in
the warehouse (FLIGHTS_REPLAY_START before the first), as the replay sensor has it; with landing
files the server's UTC date. Never the client's `day_of_year`. `drift_report` reads the table for
each day, so the drift of what was served is monitored beside the batch-scored days.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pandas as pd

from served_model.features import FEATURE_COLUMNS

log = logging.getLogger("flights.serving")


def _records(request: dict) -> list[dict] | None:
    """The flights of a request in any of MLflow's JSON formats, as dicts; None if unreadable."""
    for key in ("inputs", "instances", "dataframe_records"):
        if isinstance(request.get(key), list):
            rows = request[key]
            return rows if all(isinstance(r, dict) for r in rows) else None
    split = request.get("dataframe_split")
    if isinstance(split, dict) and isinstance(split.get("columns"), list) and isinstance(split.get("data"), list):
        return [dict(zip(split["columns"], values)) for values in split["data"]]
    return None


FLIGHT_KEY_COLUMNS = ["flight", "scheduled_departure", "tailnum", "features_as_of", "in_schedule"]


def asked_by_flight_row(answer: bytes, version: str, at: float, day: str) -> list[dict] | None:
    """The row of a `/predict` answer (by_flight.FlightDesk.answer): the features the server
    computed, the probability, and the flight they were for."""
    try:
        said = json.loads(answer)
        features, flight = said["features"], said["flight"]
        row = {c: features.get(c) for c in FEATURE_COLUMNS}
        row.update(flight=int(flight["flight"]), scheduled_departure=f"{flight['scheduled_departure']}:00",
                   tailnum=flight.get("tailnum"), features_as_of=said.get("features_as_of"),
                   in_schedule=bool(said.get("in_schedule")), probability_late=float(said["probability_late"]))
    except (ValueError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
        return None
    row.update(partition_date=day, served_at=datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds"),
               request_id=str(uuid.uuid4()), row_in_request=0, model_version=version)
    return [row]


def served_rows(body: bytes | None, response: bytes, version: str, at: float, day: str) -> list[dict] | None:
    """One row per flight of a request served on `day` (None if the request or answer cannot be
    read); no body: a `/predict` answer, which holds the flight and its features."""
    if body is None:
        return asked_by_flight_row(response, version, at, day)
    try:
        request, answer = json.loads(body), json.loads(response)
        records = _records(request) if isinstance(request, dict) else None
    except (ValueError, UnicodeDecodeError, AttributeError):
        return None
    predictions = answer.get("predictions") if isinstance(answer, dict) else None
    if records is None or not isinstance(predictions, list) or len(predictions) != len(records):
        return None
    served_at = datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")
    request_id = str(uuid.uuid4())
    rows = []
    for i, (features, p) in enumerate(zip(records, predictions)):
        row = {c: features.get(c) for c in FEATURE_COLUMNS}
        try:
            late = float(p[1] if isinstance(p, list) else p)
        except (TypeError, ValueError, IndexError):
            return None
        row.update(partition_date=day, served_at=served_at, request_id=request_id, row_in_request=i,
                   model_version=version, probability_late=late)
        rows.append(row)
    return rows


class ServedDay:
    """The day a request is served on, by the server's clock (see the module's docstring). In the
    replay it follows the warehouse (`refresh`, from the recorder's thread); `day(at)` is a read."""

    def __init__(self, warehouse, replay: bool, replay_start: str):
        self.warehouse, self.replay, self.replay_start = warehouse, replay, replay_start
        self.today: str | None = None  # the replay's, once read

    @classmethod
    def from_settings(cls, warehouse) -> ServedDay:
        from resources.settings import settings

        s = settings()
        return cls(warehouse, s.source == "replay", s.replay_start)

    def refresh(self) -> None:
        if not self.replay:
            return
        from resources.schemas import flight_features

        try:
            newest = self.warehouse.latest_partition(flight_features)
        except Exception as exc:  # the warehouse down: the day read last holds
            log.warning(f"replay clock not read from the warehouse: {type(exc).__name__}")
            return
        after = (date.fromisoformat(newest) + timedelta(days=1)).isoformat() if newest else self.replay_start
        self.today = max(after, self.replay_start)

    def day(self, at: float) -> str | None:
        """None: the replay's day is not known yet (the warehouse not read yet)."""
        return self.today if self.replay else datetime.fromtimestamp(at, UTC).date().isoformat()


def store_down(exc: BaseException) -> bool:
    """The warehouse cannot be reached or used now (retry the same rows later), as opposed to a
    refusal of the rows themselves (a data or integrity error: retrying cannot help). PEP 249
    names the connection errors alike in every driver; SQLAlchemy flags a dropped connection."""
    from sqlalchemy import exc as sa

    from resources.warehouse import WarehouseUnavailable

    if isinstance(exc, WarehouseUnavailable | sa.DisconnectionError | sa.TimeoutError | OSError):
        return True
    if isinstance(exc, sa.DBAPIError) and exc.connection_invalidated:
        return True
    return any(c.__name__ in ("OperationalError", "InterfaceError") for c in type(exc).__mro__)


def _reason(exc: BaseException) -> str:
    """The refusal as text any store keeps (no NUL, no unpaired surrogate), one line, bounded."""
    text = f"{type(exc).__name__}: {str(getattr(exc, 'orig', None) or exc)}".replace("\x00", "\\x00")
    return " ".join(text.encode("utf-8", "backslashreplace").decode("utf-8").split())[:500]


def quarantined_row(row: dict, reason: str) -> dict:
    from resources.schemas import served_quarantine

    meta = [c.name for c in served_quarantine.columns if c.name in row]
    return {**{c: row[c] for c in meta}, "reason": reason,
            "row": json.dumps({k: v for k, v in row.items() if k not in meta}, ensure_ascii=True, default=str)}


class ServedTrafficRecorder:
    """The queue the request handler appends to and the thread that writes it out."""

    def __init__(self, warehouse, interval_seconds: float = 1.0, max_bytes: int = 64 << 20,
                 clock: ServedDay | Callable | None = None):
        self.warehouse, self.interval, self.max_bytes = warehouse, interval_seconds, max_bytes
        self.clock = clock if clock is not None else ServedDay.from_settings(warehouse)
        self.pending: collections.deque = collections.deque()  # append/popleft are thread-safe
        self.pending_bytes = 0
        self.unwritten: collections.deque = collections.deque()  # (row, bytes): kept while the warehouse is down
        self.unwritten_bytes = 0
        self.recorded = self.quarantined = self.unreadable = 0
        self.dropped = self.dropped_rows = 0  # requests (and their rows) dropped at the memory bound
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="served-traffic-recorder", daemon=True)

    def _day(self, at: float) -> str | None:
        return self.clock.day(at) if isinstance(self.clock, ServedDay) else self.clock(at)

    def offer_answer(self, version: str, answer: bytes, at: float) -> None:
        """A `/predict` answer (it names the flight and holds its features), on the request path."""
        self.offer(version, None, answer, at)

    def offer(self, version: str, body: bytes | None, response: bytes, at: float) -> None:
        """Called on the request path: an append (and the oldest dropped past the bound). No
        body: `response` is a `/predict` answer (`offer_answer`)."""
        size = len(body or b"") + len(response)
        with self._lock:
            while self.pending and self.pending_bytes + size > self.max_bytes:
                self.pending_bytes -= self.pending.popleft()[5]
                self.dropped += 1
            self.pending.append((version, body, response, at, self._day(at), size))
            self.pending_bytes += size

    def _parse(self) -> None:
        while True:
            with self._lock:
                if not self.pending:
                    break
                version, body, response, at, day, size = self.pending.popleft()
                self.pending_bytes -= size
            day = day or self._day(at)
            if day is None:  # the replay's day not read yet (the warehouse down): kept as it came
                with self._lock:
                    self.pending.appendleft((version, body, response, at, day, size))
                    self.pending_bytes += size
                return
            parsed = served_rows(body, response, version, at, day)
            if parsed is None:
                self.unreadable += 1
                continue
            each = size // max(1, len(parsed))
            self.unwritten.extend((row, each) for row in parsed)
            self.unwritten_bytes += each * len(parsed)
        while self.unwritten and self.unwritten_bytes + self.pending_bytes > self.max_bytes:
            _, each = self.unwritten.popleft()
            self.unwritten_bytes -= each
            self.dropped_rows += 1

    def flush(self) -> int:
        """Write what is queued; returns the rows written to `served_predictions` (refused rows go
        to `served_quarantine`; with the warehouse down everything is kept for the next flush)."""
        from resources.schemas import served_predictions, served_quarantine

        if isinstance(self.clock, ServedDay):
            self.clock.refresh()
        self._parse()
        items = list(self.unwritten)
        written, refused, work, kept = 0, [], [(0, len(items))], []
        while work:  # halves of a refused batch, until each refused row is alone
            start, end = work.pop()
            try:
                self.warehouse.append(served_predictions, pd.DataFrame([row for row, _ in items[start:end]]))
                written += end - start
            except Exception as exc:
                if store_down(exc):
                    kept = [items[a:b] for a, b in [(start, end), *work]]
                    self.last_error = f"{type(exc).__name__}: {str(exc)[:300]}"
                    break
                if end - start == 1:
                    refused.append((items[start], _reason(exc)))
                else:
                    mid = (start + end) // 2
                    work += [(mid, end), (start, mid)]
        else:
            self.last_error = None
        if refused:
            try:
                self.warehouse.append(served_quarantine, pd.DataFrame([quarantined_row(r, why) for (r, _), why in refused]))
                self.quarantined += len(refused)
                log.warning(f"{len(refused)} served rows refused by the warehouse, kept in served_quarantine: "
                            f"{refused[0][1][:200]}")
            except Exception as exc:  # kept: tried again (and refused again, then quarantined) next time
                kept.append([item for item, _ in refused])
                self.last_error = f"{type(exc).__name__}: {str(exc)[:300]}"
        self.unwritten = collections.deque(item for part in kept for item in part)
        self.unwritten_bytes = sum(each for _, each in self.unwritten)
        if self.unwritten:
            log.warning(f"served traffic not recorded yet ({len(self.unwritten)} rows kept): {self.last_error}")
        self.recorded += written
        return written

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.flush()
            except Exception as exc:  # never ends the thread: the rows stay for the next flush
                self.last_error = f"{type(exc).__name__}: {str(exc)[:300]}"
                log.exception("served traffic flush failed")
        self.flush()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def status(self) -> dict:
        return {"recorded_rows": self.recorded, "quarantined_rows": self.quarantined,
                "pending_requests": len(self.pending), "pending_bytes": self.pending_bytes,
                "unwritten_rows": len(self.unwritten), "unwritten_bytes": self.unwritten_bytes,
                "max_bytes": self.max_bytes, "dropped": self.dropped, "dropped_rows": self.dropped_rows,
                "unreadable_requests": self.unreadable, "last_error": self.last_error}
