"""Validations in processes side by side (the UI queues two runs at a time) share nothing: the GX
context is ephemeral, so each keeps its own suites and limits and nothing lands on the disk."""

import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor

import pandas as pd


def _validate_repeatedly(folder: str, day: str, max_share: float) -> list[bool]:
    import os

    os.chdir(folder)  # anything GX wrote would land here
    from assets.validation.expectations import flights_row_suite, quarantine_share_suite
    from assets.validation.logic import prepare_for_validation
    from resources.data_quality import GreatExpectations
    from resources.schemas import FLIGHTS
    from tests.support import replay_day

    raw = replay_day("flights", day)
    raw.insert(0, "row_number", range(1, len(raw) + 1))
    raw.insert(0, "source_file", "f")
    raw.insert(0, "partition_date", day)
    frame = prepare_for_validation(raw, FLIGHTS)
    gx = GreatExpectations()
    out = []
    for _ in range(3):
        out.append(gx.validate(frame, "validated_flights_rows", flights_row_suite).success)
        share = pd.DataFrame({"quarantine_share": [0.05]})
        # the two processes register different versions of this suite (another limit)
        out.append(gx.validate(share, "validated_flights_day_summary", quarantine_share_suite, "flights", max_share, docs=False).success)
    return out


def test_two_processes_validate_side_by_side_and_write_nothing(tmp_path):
    args = [(str(tmp_path), "2013-04-01", 0.10), (str(tmp_path), "2013-04-02", 0.01)]
    # a graceful shutdown (workers leave when the work is done): Pool's context manager terminates
    # its workers with SIGTERM, which a worker busy in a library's signal handling may not heed
    with ProcessPoolExecutor(max_workers=2, mp_context=mp.get_context("spawn")) as pool:
        first, second = pool.map(_validate_repeatedly, *zip(*args))
    assert first == [True, True] * 3
    assert second == [True, False] * 3  # 5 % bad rows is above the second process's 1 % limit
    assert list(tmp_path.iterdir()) == []  # no GX project, no Data Docs site on this host


def test_validating_text_columns_as_categories_finds_the_same_rows(monkeypatch):
    """A week of real flights with broken values: the row suite finds the same failing rows, with
    the same observed values, whether the low-cardinality text columns go to GX as categoricals
    (frames of CATEGORY_MIN_ROWS rows or more) or as they are."""
    import resources.data_quality as data_quality
    from assets.validation.expectations import flights_row_suite
    from assets.validation.logic import prepare_for_validation
    from resources.schemas import FLIGHTS
    from tests.support import replay_day

    days = [f"2013-04-{d:02d}" for d in range(1, 8)]
    raw = pd.concat([replay_day("flights", d).assign(partition_date=d, source_file=f"flights_{d}.csv")
                     for d in days], ignore_index=True)
    raw["row_number"] = range(1, len(raw) + 1)
    raw.loc[5, "dep_delay"], raw.loc[7, "carrier"], raw.loc[9, "distance"] = "abc", "ZZ", None
    raw.loc[11, "origin"], raw.loc[13, "sched_dep_time"], raw.loc[15, "day"] = " EWR", "2561", "31"
    frame = prepare_for_validation(raw, FLIGHTS)
    assert len(frame) >= data_quality.CATEGORY_MIN_ROWS
    as_categories = data_quality._as_categories(frame)
    assert {"carrier", "origin", "dep_delay__raw", "partition_date"} <= {
        c for c in frame.columns if as_categories[c].dtype == "category"}

    gx = data_quality.GreatExpectations()
    fast = gx.validate(frame, "validated_flights_rows", flights_row_suite, docs=False)
    monkeypatch.setattr(data_quality, "CATEGORY_MIN_ROWS", 10**9)
    plain = gx.validate(frame, "validated_flights_rows", flights_row_suite, docs=False)
    assert not fast.success and sum(len(o.unexpected_index) for o in fast.outcomes) >= 6
    assert [(o.type, o.kwargs, o.success, sorted(o.unexpected_index), str(o.observed)) for o in fast.outcomes] == \
        [(o.type, o.kwargs, o.success, sorted(o.unexpected_index), str(o.observed)) for o in plain.outcomes]
