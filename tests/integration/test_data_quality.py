"""The GX project is shared by runs that execute side by side (the UI queues two at a time)."""

import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor

import pandas as pd


def _validate_repeatedly(project_dir: str, day: str, max_share: float) -> list[bool]:
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
    gx = GreatExpectations(project_dir=project_dir)
    out = []
    for _ in range(3):
        out.append(gx.validate(frame, "validated_flights_rows", flights_row_suite).success)
        share = pd.DataFrame({"quarantine_share": [0.05]})
        # the two processes register different versions of this suite (another limit)
        out.append(gx.validate(share, "validated_flights_day_summary", quarantine_share_suite, "flights", max_share, docs=False).success)
    return out


def test_two_processes_validate_against_one_project(tmp_path):
    args = [(str(tmp_path / "gx"), "2013-04-01", 0.10), (str(tmp_path / "gx"), "2013-04-02", 0.01)]
    # a graceful shutdown (workers leave when the work is done): Pool's context manager terminates
    # its workers with SIGTERM, which a worker busy in a library's signal handling may not heed
    with ProcessPoolExecutor(max_workers=2, mp_context=mp.get_context("spawn")) as pool:
        first, second = pool.map(_validate_repeatedly, *zip(*args))
    assert first == [True, True] * 3
    assert second == [True, False] * 3  # 5 % bad rows is above the second process's 1 % limit
