"""Served traffic to the warehouse: every flight the scoring server scored (its features, the
probability it answered, the version that answered, when), in batches, off the request path.

The request handler only appends the raw request and response bytes to a bounded in-memory
queue (microseconds); a background thread parses them and writes a batch every
FLIGHTS_SERVE_RECORD_SECONDS in one transaction (table `served_predictions`). When the warehouse
is unreachable the batch is kept and written later; past `max_pending` requests the oldest are
dropped and counted (the server's `/serving` status shows both counts): recording never slows or
fails a request. `drift_report` reads the table for each day (the flight's day, from its
features), so the drift of what was served is monitored beside the batch-scored days.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import uuid
from datetime import UTC, date, datetime, timedelta

import pandas as pd

from assets.common import PARTITION_START
from served_model.features import FEATURE_COLUMNS

log = logging.getLogger("flights.serving")
YEAR = date.fromisoformat(PARTITION_START).year


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


def flight_day(day_of_year) -> str:
    """The flight's day in the partitions' year, from its `day_of_year` feature ('' if none)."""
    try:
        return (date(YEAR, 1, 1) + timedelta(days=int(day_of_year) - 1)).isoformat()
    except (TypeError, ValueError, OverflowError):
        return ""


def served_rows(body: bytes, response: bytes, version: str, at: float) -> list[dict] | None:
    """One row per flight of a served request (None if the request or answer cannot be read)."""
    try:
        records, answer = _records(json.loads(body)), json.loads(response)
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
        row.update(partition_date=flight_day(features.get("day_of_year")), served_at=served_at, request_id=request_id,
                   row_in_request=i, model_version=version, probability_late=float(p[1] if isinstance(p, list) else p))
        rows.append(row)
    return rows


class ServedTrafficRecorder:
    """The bounded queue the request handler appends to and the thread that writes it out."""

    def __init__(self, warehouse, interval_seconds: float = 1.0, max_pending: int = 100_000):
        self.warehouse, self.interval, self.max_pending = warehouse, interval_seconds, max_pending
        self.pending: collections.deque = collections.deque()  # append/popleft are thread-safe
        self.unwritten: list[dict] = []  # parsed rows kept while the warehouse is unreachable
        self.recorded = self.dropped = self.unreadable = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="served-traffic-recorder", daemon=True)

    def offer(self, version: str, body: bytes, response: bytes, at: float) -> None:
        """Called on the request path: an append, nothing else."""
        if len(self.pending) >= self.max_pending:
            self.pending.popleft()
            self.dropped += 1
        self.pending.append((version, body, response, at))

    def flush(self) -> int:
        """Write what is queued; returns the rows written (0 if the warehouse refused, kept)."""
        from resources.schemas import served_predictions

        rows = self.unwritten
        while self.pending:
            version, body, response, at = self.pending.popleft()
            parsed = served_rows(body, response, version, at)
            if parsed is None:
                self.unreadable += 1
            else:
                rows.extend(parsed)
        self.unwritten = []
        if not rows:
            return 0
        try:
            self.warehouse.append(served_predictions, pd.DataFrame(rows))
        except Exception as exc:  # kept for the next batch, up to the bound
            self.last_error = f"{type(exc).__name__}: {str(exc)[:300]}"
            log.warning(f"served traffic not recorded yet ({len(rows)} rows kept): {self.last_error}")
            self.unwritten = rows[-self.max_pending:]
            self.dropped += len(rows) - len(self.unwritten)
            return 0
        self.recorded += len(rows)
        self.last_error = None
        return len(rows)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()
        self.flush()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def status(self) -> dict:
        return {"recorded_rows": self.recorded, "pending_requests": len(self.pending),
                "unwritten_rows": len(self.unwritten), "dropped": self.dropped, "unreadable_requests": self.unreadable,
                "last_error": self.last_error}
