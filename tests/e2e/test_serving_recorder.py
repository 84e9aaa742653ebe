"""The scoring server's recorder (`ServedTrafficRecorder`) on the profile's warehouse (SQLite or
PostgreSQL): rows the warehouse refuses are quarantined with the reason and every other row is
written; a warehouse that is down keeps the rows for later; the memory it keeps is bounded in
bytes; a row's day is the server's clock (the replay clock in the replay), not the client's."""

import json

from sqlalchemy import text

from resources.warehouse import Warehouse
from served_model.features import model_input
from tests.support import POSTGRES_SERVER, feature_days, json_records, store_url, write_versions

UNREACHABLE = "postgresql+psycopg2://nobody@127.0.0.1:9/warehouse"  # nothing listens on port 9


def _requests(n: int, rows: list[dict]):
    """(body, answer) of n one-flight requests as the server answered them."""
    return [(json.dumps({"inputs": [rows[i % len(rows)]]}).encode(), json.dumps({"predictions": [[0.7, 0.3]]}).encode())
            for i in range(n)]


def _count(wh: Warehouse, table: str) -> int:
    with wh.engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar()  # our own table name, never data


def test_rows_the_warehouse_refuses_are_quarantined_and_the_rest_written(tmp_path):
    from pipelines.serving.traffic import ServedTrafficRecorder

    wh = Warehouse(url=store_url(tmp_path, "warehouse"))
    rows = json_records(model_input(feature_days(["2013-05-02"]).head(50)))
    good = _requests(40, rows)
    # a carrier with an unpaired surrogate (no driver encodes it) and one with a NUL character
    # (PostgreSQL's text refuses it, SQLite keeps it): both were answered, as unknown categories
    bad = [(json.dumps({"inputs": [{**rows[0], "carrier": carrier}]}).encode(), good[0][1])
           for carrier in ("U\ud800A", "U\x00A")]
    recorder = ServedTrafficRecorder(wh, 1.0)
    for body, answer in good[:20] + bad + good[20:]:
        recorder.offer("1", body, answer, 1.0e9)
    written = recorder.flush()

    refused = 2 if POSTGRES_SERVER else 1
    assert (written, recorder.quarantined, len(recorder.unwritten)) == (42 - refused, refused, 0)
    assert _count(wh, "served_predictions") == 42 - refused
    with wh.engine.connect() as conn:
        kept = conn.execute(text("SELECT reason, row, model_version FROM served_quarantine")).fetchall()
    assert len(kept) == refused and {r.model_version for r in kept} == {"1"}
    carriers = {json.loads(r.row)["carrier"] for r in kept}
    assert "U\ud800A" in carriers and all(r.reason for r in kept)
    assert any("surrogate" in r.reason or "encode" in r.reason for r in kept)
    if POSTGRES_SERVER:
        assert "U\x00A" in carriers and any("NUL" in r.reason for r in kept)
    # later traffic is not held back by what was refused
    for body, answer in good[:5]:
        recorder.offer("1", body, answer, 1.0e9)
    assert recorder.flush() == 5 and recorder.status()["last_error"] is None


def test_a_warehouse_that_is_down_keeps_the_rows_then_writes_them(tmp_path):
    from pipelines.serving.traffic import ServedDay, ServedTrafficRecorder

    rows = json_records(model_input(feature_days(["2013-05-02"]).head(10)))
    up = Warehouse(url=store_url(tmp_path, "warehouse"))
    recorder = ServedTrafficRecorder(Warehouse(url=UNREACHABLE), 1.0, clock=ServedDay(up, True, "2013-05-03"))
    recorder.clock.refresh()  # the replay's day, read while the warehouse was up
    for body, answer in _requests(12, rows):
        recorder.offer("1", body, answer, 1.0e9)
    assert recorder.flush() == 0 and (len(recorder.unwritten), recorder.quarantined) == (12, 0)  # kept, not refused
    assert "unreachable" in recorder.status()["last_error"]
    recorder.warehouse = up  # the warehouse is back
    assert recorder.flush() == 12 and _count(up, "served_predictions") == 12 and _count(up, "served_quarantine") == 0


def test_the_memory_kept_is_bounded_in_bytes(tmp_path):
    from pipelines.serving.traffic import ServedTrafficRecorder

    rows = json_records(model_input(feature_days(["2013-05-02"]).head(10)))
    requests = _requests(300, rows)
    size = sum(len(b) + len(a) for b, a in requests)
    bound = size // 3
    recorder = ServedTrafficRecorder(Warehouse(url=UNREACHABLE), 1.0, max_bytes=bound, clock=lambda at: "2013-05-03")
    for i, (body, answer) in enumerate(requests):
        recorder.offer("1", body, answer, 1.0e9)
        if i % 50 == 0:
            recorder.flush()  # the warehouse down: kept, up to the bound
    recorder.flush()
    status = recorder.status()
    assert status["pending_bytes"] + status["unwritten_bytes"] <= bound
    assert status["unwritten_rows"] > 50 and status["dropped"] + status["dropped_rows"] + status["unwritten_rows"] == 300


def test_the_served_day_is_the_servers_clock_not_the_clients(tmp_path, monkeypatch):
    from pipelines.serving.traffic import ServedTrafficRecorder
    from resources.schemas import flight_features

    wh = Warehouse(url=store_url(tmp_path, "warehouse"))
    write_versions(wh, "flight_features", {flight_features: feature_days(["2013-06-10"])}, ["2013-06-10"])
    row = json_records(model_input(feature_days(["2013-05-02"]).head(1)))[0]
    assert row["day_of_year"] == 122.0  # the client says May 2
    at = 1.7e9  # 2023-11-14 22:13:20 UTC
    body, answer = json.dumps({"inputs": [row]}).encode(), json.dumps({"predictions": [[0.7, 0.3]]}).encode()

    replay = ServedTrafficRecorder(wh, 1.0)  # FLIGHTS_SOURCE=replay (the default): the replay clock
    replay.offer("1", body, answer, at)
    assert replay.flush() == 1
    monkeypatch.setenv("FLIGHTS_SOURCE", "landing")
    served = ServedTrafficRecorder(wh, 1.0)  # landing files: the server's UTC date
    served.offer("1", body, answer, at)
    assert served.flush() == 1
    with wh.engine.connect() as conn:
        days = [r[0] for r in conn.execute(text("SELECT partition_date FROM served_predictions ORDER BY partition_date"))]
    assert days == ["2013-06-11", "2023-11-14"]  # the day after the newest day with features; the clock's date
