"""The scoring server's door (pipelines/serving/boundary.py) and its workers, on loopback, with
the profile's stores (SQLite or PostgreSQL): a body over the bound is refused before it is read,
a request over the row bound too; text no store keeps and non-finite numbers are a 400 naming the
field; no error answer holds a stack trace or the input; a fuzz of requests is answered 200 or a
clear 4xx, and every flight answered 200 is in the warehouse (recorded or quarantined): none lost.
Last, a worker killed: the other keeps serving and uvicorn's supervisor starts a new one."""

import json
import os
import signal
import socket
import time
import urllib.error
import urllib.request

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from tests.support import free_port, json_records, start_server, stop_server, store_url

pytestmark = pytest.mark.e2e
MAX_ROWS, MAX_BODY_MB = 200, 0.25


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A registered champion and the server (two workers, recording) in front of it."""
    from assets.training.build import pip_requirements, training_dataset
    from assets.training.logic import ModelParams, fit_candidate
    from pipelines.serving.server import serve_command
    from resources.records import BuildInfo, RetrainTrigger
    from resources.registry import ModelRegistry
    from resources.warehouse import Warehouse
    from served_model.features import model_input
    from tests.support import feature_days, training_set_of

    tmp = tmp_path_factory.mktemp("door")
    days = [f"2013-05-{d:02d}" for d in range(1, 8)]
    ts = training_set_of(feature_days(days), days)
    registry = ModelRegistry(tracking_uri=store_url(tmp, "mlflow"), artifact_root=str(tmp / "artifacts"))
    fitted = fit_candidate(ts, ModelParams(max_iter=5))
    rows = model_input(ts.split("test").head(50))
    run = registry.start_training_run(ts.window, RetrainTrigger(), BuildInfo("run", "retrain_job", "c", "l", "1"), run_name="v1")
    registry.register_candidate(fitted.model, run_id=run, params={}, metrics={}, threshold=fitted.threshold,
                                sample=rows.head(20), dataset=training_dataset(ts.window, "sqlite:///w.db#flight_features"),
                                pip_requirements=pip_requirements())
    registry.promote("1", by="test", reason="start")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd, env = serve_command(registry, "127.0.0.1", port)
    warehouse = store_url(tmp, "warehouse")
    env.update({"WAREHOUSE_URL": warehouse, "FLIGHTS_SERVE_RECORD_SECONDS": "0.2", "FLIGHTS_SERVE_MAX_ROWS": str(MAX_ROWS),
                "FLIGHTS_SERVE_MAX_BODY_MB": str(MAX_BODY_MB), "MLFLOW_ARTIFACT_ROOT": str(tmp / "artifacts")})
    proc, log = start_server(cmd, env, tmp / "serve.log", url + "/ping")
    try:
        yield {"url": url, "port": port, "rows": json_records(rows), "warehouse": Warehouse(url=warehouse).engine}
    finally:
        stop_server(proc, log)
        os.environ.pop("MLFLOW_TRACKING_URI", None)  # mlflow.set_tracking_uri exported it: not for later tests


def _post(url: str, body: bytes, content_type: str = "application/json"):
    """(status, body, headers) of a POST to /invocations."""
    request = urllib.request.Request(url + "/invocations", data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers


def _raw(port: int, head: bytes, body: bytes = b"") -> bytes:
    """What the server answers to bytes sent as they are (a client that declares more than it sends)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(head + body)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = s.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer


def test_a_body_over_the_bound_is_refused_before_it_is_read(server):
    # 155 MiB declared (200,000 rows), nothing sent after the headers: answered at once, not awaited
    head = (b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 162529280\r\n\r\n")
    answer = _raw(server["port"], head, b'{"inputs": [')
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    # streamed without a length (chunked): refused once it passes the bound
    row = json.dumps(server["rows"][0]).encode() + b","
    piece = b'{"inputs": [' + row * int(MAX_BODY_MB * 2**20 / len(row) + 50)
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in
                       (piece[i:i + 16384] for i in range(0, len(piece), 16384))) + b"0\r\n\r\n"
    answer = _raw(server["port"], b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n", chunked)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    # a small body with too many flights
    status, body, _ = _post(server["url"], json.dumps({"inputs": server["rows"][:1] * (MAX_ROWS + 1)}).encode())
    assert status == 413 and f"{MAX_ROWS + 1} flights".encode() in body and b"FLIGHTS_SERVE_MAX_ROWS" in body


@pytest.mark.parametrize("field, value, says", [
    ("carrier", "U\x00A", b"NUL"),
    ("carrier", "U\ud800A", b"surrogate"),
    ("distance", float("nan"), b"finite"),
    ("distance", float("inf"), b"finite"),
    ("temp", -float("inf"), b"finite"),
])
def test_text_no_store_keeps_and_non_finite_numbers_are_refused_naming_the_field(server, field, value, says):
    rows = [dict(r) for r in server["rows"][:3]]
    rows[2][field] = value
    status, body, headers = _post(server["url"], json.dumps({"inputs": rows}).encode())
    assert status == 400 and f"inputs[2].{field}".encode() in body and says in body, body
    assert headers["X-Model-Version"] == "1"
    status, body, _ = _post(server["url"], json.dumps({"inputs": [{**rows[0], "distance": 1e308}]}).encode()
                            .replace(b"1e+308", b"1e999"))  # a number JSON reads as infinity
    assert status == 400 and b"inputs[0].distance" in body


def test_error_answers_hold_no_stack_trace_and_no_input(server):
    marker = "input-echo-marker"
    rows = [dict(r) for r in server["rows"][:80]]  # beyond the small-request path too
    rows[5]["distance"] = marker
    shown = [rows[0]["origin"], rows[0]["dest"], repr(rows[0]["distance"])]  # values sent: never echoed
    for body, named, echoed in (
            (json.dumps({"inputs": rows}).encode(), "inputs[5].distance", [marker, *shown]),
            (json.dumps({"inputs": [{**rows[0], marker: 1.0}]}).encode(), f"inputs[0].{marker}", shown),
            (json.dumps({"inputs": [{k: v for k, v in rows[0].items() if k != "distance"}]}).encode(),
             "inputs[0].distance: Field required", shown)):
        status, answer, _ = _post(server["url"], body)
        said = answer.decode()
        assert status == 400 and "stack_trace" not in said and "Traceback" not in said, said[:300]
        assert named in said and not [v for v in echoed if v in said], said[:300]
    status, answer, _ = _post(server["url"], b'{"inputs": [{"carrier": ')
    assert status == 400 and b"not valid JSON" in answer
    status, answer, _ = _post(server["url"], b"carrier,origin\nUA,EWR\n", "text/csv")
    assert status == 415


def _stored(engine) -> int:
    with engine.connect() as conn:
        return sum(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in ("served_predictions", "served_quarantine"))


FIELD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10**308, max_value=10**320),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
    st.sampled_from(["\x00", "U\x00A", "\ud800", "a\udfffb", "UA", "EWR", "", "NaN"]),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@st.composite
def requests(draw, base: list[dict]):
    """A request body as a client might send one: good flights, flights with a field changed,
    dropped or added, or a body that is not a request at all."""
    kind = draw(st.sampled_from(["good", "changed", "changed", "dropped", "added", "shape", "bytes"]))
    rows = [dict(r) for r in draw(st.lists(st.sampled_from(base), min_size=1, max_size=70))]
    if kind == "changed":
        rows[draw(st.integers(0, len(rows) - 1))][draw(st.sampled_from(sorted(base[0])))] = draw(FIELD_VALUES)
    elif kind == "dropped":
        rows[0].pop(draw(st.sampled_from(sorted(base[0]))))
    elif kind == "added":
        rows[0][draw(st.text(max_size=6))] = draw(FIELD_VALUES)
    elif kind == "shape":
        return json.dumps(draw(st.sampled_from([[], {}, {"inputs": {}}, {"inputs": [1]}, {"instances": rows},
                                                {"inputs": rows, "params": {"x": "\x00"}}, "x", None]))).encode()
    elif kind == "bytes":
        return draw(st.one_of(st.binary(max_size=64), st.just(b"[" * 100_000)))
    ascii_only = draw(st.booleans())
    return json.dumps({"inputs": rows}, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def test_a_fuzz_of_requests_is_answered_and_loses_no_row(server):
    url, base, engine = server["url"], server["rows"], server["warehouse"]
    before, answered = _stored(engine), []

    @settings(max_examples=120, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.data_too_large])
    @given(body=requests(base))
    def one_request(body):
        status, answer, headers = _post(url, body)
        assert status == 200 or 400 <= status < 500, (status, answer[:300])
        assert headers["X-Model-Version"] == "1"
        if status == 200:
            predictions = json.loads(answer)["predictions"]
            answered.append(len(predictions))
            assert len(predictions) == len(json.loads(body)["inputs"])
        else:
            said = json.loads(answer)
            assert said["message"] and "stack_trace" not in said and "Traceback" not in said["message"]

    one_request()
    rows = sum(answered)
    deadline = time.time() + 60
    while _stored(engine) - before < rows and time.time() < deadline:
        time.sleep(0.2)
    stored = _stored(engine) - before
    with engine.connect() as conn:
        quarantined = conn.execute(text("SELECT count(*) FROM served_quarantine")).scalar()
    print(f"fuzz: {len(answered)} requests answered 200 ({rows} flights), {stored} rows stored "
          f"({quarantined} quarantined in all)")
    assert len(answered) > 10 and stored == rows  # every flight answered is in the warehouse: 0 lost


def test_a_dead_worker_is_replaced_while_the_other_serves(server):
    url, body = server["url"], json.dumps({"inputs": server["rows"][:1]}).encode()
    workers = set()
    for _ in range(200):
        workers.add(_post(url, body)[2]["X-Serving-Worker"])
        if len(workers) == 2:
            break
    assert len(workers) == 2
    victim = sorted(workers)[0]
    os.kill(int(victim), signal.SIGKILL)
    answered, new = [], set()
    deadline = time.time() + 180  # a new worker loads and warms the champion first
    while time.time() < deadline and not new:
        status, _, headers = _post(url, body)
        answered.append(status)
        new = {headers["X-Serving-Worker"]} - workers
    assert set(answered) == {200} and new, (answered[-5:], workers)  # no request failed meanwhile
    print(f"worker {victim} killed: {len(answered)} requests answered 200 until worker {new.pop()} took its place")
