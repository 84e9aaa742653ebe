"""The serving workers' shared board: a version that cannot be served is told once, however many
workers fail to load it and however often it is tried again."""

import multiprocessing
import time

from pipelines.serving.follower import RETRY_FAILED_SECONDS, SwapBoard


def test_a_failed_version_is_told_by_one_worker_once():
    board = SwapBoard(multiprocessing.get_context("spawn"), workers=2)
    t = time.time()  # a failure is stamped with the clock
    gen = board.begin(3, now=t)
    assert board.begin(3, now=t + 0.1) == gen  # the second worker joins the same move
    # both workers fail to load v3 at the same moment: one tells
    assert [board.failed(gen, "artifacts missing"), board.failed(gen, "artifacts missing")] == [True, False]
    assert board.failure() == {"3": "artifacts missing"} and board.instant(gen) is None
    assert board.begin(3, now=t + 1) is None  # not tried again before the retry delay
    retry = board.begin(3, now=t + RETRY_FAILED_SECONDS + 1)
    assert retry is not None and retry != gen
    assert board.failed(retry, "artifacts missing") is False  # the retry fails again: already told
    other = board.begin(4, now=t + 2 * RETRY_FAILED_SECONDS + 2)
    assert board.failed(other, "no package") is True  # another version's failure is news
