"""The failures that retrying cannot fix, shared by the stores and the stages' logic (no Dagster)."""

import re


class DataProblem(ValueError):
    """Bad or missing data, a failed gate, a store built by an older schema: retrying the step
    cannot fix it. The Dagster side fails such a step at once (assets/asset_factory.py)."""


def refused_value(exc: BaseException, where: str = "") -> DataProblem | None:
    """A value the store refuses, as a `DataProblem` naming `where` (the partitions), the table
    and the column (when the error tells them), and the store's reason; None for any other error.

    Refused values: a driver's `DataError` (PEP 249, raised by the driver's cursor itself, or
    SQLAlchemy's wrapper of one: a number out of the column's range, text too long), and
    psycopg2's refusal of a NUL character in text (a `ValueError`, before the server sees it).
    Writing them again fails the same way, so the step is not retried."""
    kinds = [k.__name__ for k in type(exc).__mro__]
    nul = isinstance(exc, ValueError) and "NUL (0x00)" in str(exc)
    if "DataError" not in kinds and not nul:
        return None
    driver = getattr(exc, "orig", None) or exc  # SQLAlchemy's wrapper: the driver's error
    statement = getattr(exc, "statement", None) or getattr(getattr(driver, "cursor", None), "query", None) or ""
    if isinstance(statement, bytes):
        statement = statement.decode("utf-8", errors="replace")
    table = re.match(r'\s*INSERT INTO "?(\w+)"?', statement, re.I)
    diag = getattr(driver, "diag", None)
    column = getattr(diag, "column_name", None)
    partition = None
    if column is None and table:  # the store did not say: the first value out of its column's type
        column, partition = _out_of_type(statement, table[1])
    reason = str(driver).strip().splitlines()[0] if str(driver).strip() else type(driver).__name__
    parts = [f"partition {partition}" if partition else where, f"table {table[1]}" if table else "",
             f"column {column!r}" if column else "column unknown"]
    return DataProblem(f"the warehouse refused a value ({', '.join(p for p in parts if p)}): {reason}; "
                       "writing it again would fail the same way: not retried")


def _literals(statement: str) -> tuple[list[str], list[list[str]]]:
    """The columns and the rows of SQL literals of a multi-row `INSERT INTO t (cols) VALUES (...),
    (...)` (psycopg2's `execute_values` binds the values into the statement it sends)."""
    head, _, body = statement.partition(" VALUES ")
    columns = [c.strip().strip('"') for c in head[head.find("(") + 1:head.rfind(")")].split(",")]
    rows, row, current, quoted, i = [], [], [], False, 0
    while i < len(body):
        ch = body[i]
        if quoted:
            if ch == "'" and body[i + 1:i + 2] == "'":
                current.append("'")
                i += 1
            elif ch == "'":
                quoted = False
            else:
                current.append(ch)
        elif ch == "'":
            quoted = True
        elif ch == "(":
            row, current = [], []
        elif ch in ",)" and (ch == ")" or row is not None):
            row.append("".join(current).strip())
            current = []
            if ch == ")":
                rows.append(row)
                row = None
        elif row is not None:
            current.append(ch)
        i += 1
    return columns, rows


def _out_of_type(statement: str, table: str) -> tuple[str | None, str | None]:
    """(column, partition_date) of the first value beyond its warehouse column's type: an integer
    outside PostgreSQL's 4-byte `integer`, a text longer than its `VARCHAR(n)`."""
    from sqlalchemy import Integer, String

    from resources.schemas import metadata

    if table not in metadata.tables:
        return None, None
    types = {c.name: c.type for c in metadata.tables[table].columns}
    columns, rows = _literals(statement)
    for row in rows:
        for name, value in zip(columns, row, strict=False):
            kind = types.get(name)
            too_big = (isinstance(kind, Integer) and value.lstrip("-").isdigit() and not -2**31 <= int(value) < 2**31) or (
                isinstance(kind, String) and kind.length and len(value) > kind.length)
            if too_big:
                day = dict(zip(columns, row, strict=False)).get("partition_date")
                return name, day
    return None, None
