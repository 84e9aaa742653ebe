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
