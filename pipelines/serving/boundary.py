"""The scoring server's door: what a request to /invocations must be before a version's MLflow app
sees it, and what an error answer may say.

- The body is read here, bounded (FLIGHTS_SERVE_MAX_BODY_MB): a `Content-Length` over the bound is
  answered 413 before a byte of the body is read; a body streamed without one (chunked) is
  answered 413 as soon as it passes the bound. Nothing larger is ever held in memory.
- JSON only (`Content-Type: application/json`, what the recorder reads; 415 otherwise), at most
  FLIGHTS_SERVE_MAX_ROWS flights (413 naming both counts).
- A flight's field holding a NUL character or an unpaired surrogate (text no store keeps), or a
  number that is not finite (`NaN`, `Infinity`, `1e999`), is a 400 naming the row and the field.
- Error answers carry no stack trace and none of the input: MLflow's answer to a request its type
  check refused echoes the rows and the traceback; it is replaced by the served version's own
  check of the rows (its pydantic type), one line per field (`inputs[0].distance: Field required`).

Checks of the request's text cost a byte search of the body; the rows are walked only when that
search finds something to look at (an escape, a non-finite constant, a very long exponent).
"""

from __future__ import annotations

import json
import math
import re

MEBIBYTE = 1 << 20
# what may hide a value no store keeps: a NUL or surrogate escape, a number beyond a float, NaN or
# an infinity (Python's json reads them; JSON has none); only a body that has one is scanned row by row
_SUSPECT = re.compile(rb"\\u(?:0000|[dD][89abAB])|[eE][+]?0*[1-9][0-9]{2,}|[0-9]{300,}|NaN|Infinity")
_SHOWN_PROBLEMS = 5


class Refused(Exception):
    """A request answered before any model sees it: its status and what the client is told."""

    def __init__(self, status: int, message: str, code: str = "BAD_REQUEST"):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class Disconnected(Exception):
    """The client went away while its body was being read."""


def error_body(code: str, message: str) -> bytes:
    return json.dumps({"error_code": code, "message": message}).encode()


def shown_name(name) -> str:
    """A client's field name as shown back: printable, bounded."""
    text = name if isinstance(name, str) else repr(name)
    shown = json.dumps(text, ensure_ascii=True)[1:-1]
    return shown if len(shown) <= 64 else shown[:61] + "..."


async def read_body(scope, receive, max_bytes: int) -> bytes:
    """The request's body, whole, or Refused(413) past `max_bytes` (by Content-Length first)."""
    limit = f"over the limit of {max_bytes / MEBIBYTE:g} MiB (FLIGHTS_SERVE_MAX_BODY_MB)"
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                raise Refused(400, "Content-Length is not a number") from None
            if declared > max_bytes:
                raise Refused(413, f"the body ({declared} bytes) is {limit}", "REQUEST_TOO_LARGE")
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise Refused(413, f"the body is {limit}", "REQUEST_TOO_LARGE")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class _NonFinite(float):
    """`NaN`, `Infinity` or `-Infinity` in the body (Python's json reads them; JSON has none)."""


_DECODER = json.JSONDecoder(parse_constant=_NonFinite)  # one for every request (building one costs)


def json_body(scope, body: bytes, example: str) -> object:
    """The request's JSON, or Refused (415 for anything but JSON, 400 for a body that is not JSON)."""
    content_type = dict(scope.get("headers", [])).get(b"content-type", b"").split(b";")[0].strip().lower()
    if content_type != b"application/json":
        raise Refused(415, f"send JSON (Content-Type: application/json): {example}", "UNSUPPORTED_MEDIA_TYPE")
    try:
        return _DECODER.decode(body.decode("utf-8"))
    except json.JSONDecodeError as exc:
        raise Refused(400, f"the body is not valid JSON ({exc.msg}: line {exc.lineno} column {exc.colno})") from None
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "the body is not valid JSON (UTF-8)") from None
    except RecursionError:
        raise Refused(400, "the body is not valid JSON (nested too deep)") from None


def parse(scope, body: bytes, max_rows: int) -> list[dict] | None:
    """The request's flights (None: not a list of flights, left to MLflow's own answer), or Refused."""
    request = json_body(scope, body, '{"inputs": [{<feature>: value, ...}, ...]}')
    rows = request.get("inputs") if isinstance(request, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        return None
    if len(rows) > max_rows:
        raise Refused(413, f"{len(rows)} flights in one request: over the limit of {max_rows} "
                      "(FLIGHTS_SERVE_MAX_ROWS); send them in several requests", "REQUEST_TOO_LARGE")
    if _SUSPECT.search(body):
        for i, row in enumerate(rows):
            for name, value in row.items():
                problem = _value_problem(value)
                if problem:
                    raise Refused(400, f"inputs[{i}].{shown_name(name)}: {problem}")
    return rows


def _value_problem(value) -> str | None:
    if (isinstance(value, float) and not math.isfinite(value)) or (
            isinstance(value, int) and not isinstance(value, bool) and abs(value) > 1e308):
        return "is not a finite number (NaN and infinities are refused; leave an unknown value null)"
    if isinstance(value, str):
        if "\x00" in value:
            return "holds a NUL character (\\u0000)"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "holds an unpaired surrogate (not valid Unicode text)"
    return None


def row_type(model):
    """The pydantic type a version's model checks each flight against (its own package's), or None."""
    import typing

    try:
        hints = typing.get_type_hints(type(model.unwrap_python_model()).predict)
        (element,) = typing.get_args(hints["model_input"])
        return element if hasattr(element, "model_validate") else None
    except Exception:  # noqa: BLE001 - a model without a typed signature: the generic message
        return None


def scrubbed(answer: bytes, rows: list[dict] | None, checked) -> bytes:
    """An error answer of MLflow's app, without its stack trace and the input it echoes: the
    rows' problems by the version's own check, or a line that says what kind of refusal it was."""
    try:
        code = str(json.loads(answer).get("error_code", "BAD_REQUEST"))[:64]
    except (ValueError, AttributeError, UnicodeDecodeError):
        code = "BAD_REQUEST"
    problems = []
    if rows is not None and checked is not None:
        from pydantic import ValidationError

        for i, row in enumerate(rows):
            try:
                checked.model_validate(row)
            except ValidationError as exc:
                for e in exc.errors(include_url=False, include_input=False, include_context=False):
                    where = ".".join(shown_name(p) for p in e["loc"])
                    problems.append(f"inputs[{i}].{where}: {e['msg']}")
            if len(problems) > _SHOWN_PROBLEMS:
                break
    if problems:
        more = " (and more)" if len(problems) > _SHOWN_PROBLEMS else ""
        message = "; ".join(problems[:_SHOWN_PROBLEMS]) + more
    else:
        message = ("the model could not score this request: send {\"inputs\": [{<feature>: value, ...}, ...]} "
                   "with each flight's features (GET /serving names the served version)")
    return error_body(code, message)
