"""Work that a sensor or a schedule requests again after its run failed, a bounded number of times.

Dagster skips a run request whose run key it has seen, whatever became of that run: a day whose
ingestion failed while a store was down would never be requested again. So each piece of work (a
day to ingest, a decision about a challenger) has a name, and its run key carries the attempt:
`<work>` the first time, `<work>:attempt-<k>` after k-1 failed runs, counted from the instance's
runs tagged with the work. Up to `MAX_ATTEMPTS` requests; a run that Dagster itself re-executes
(dagster.yaml `run_retries`: a run that failed outside its steps) belongs to its request's attempt.
No further request once a run failed on what retrying cannot fix (a `DataFailure`: bad data, a
refused decision) or after the last attempt: the failure alert of that run says it gives up
(`attempt_note`), and the sensor's skip message names the work and the run.
"""

from __future__ import annotations

from dataclasses import dataclass

from dagster import DagsterEventType, DagsterRunStatus, RunsFilter

WORK_TAG = "attempt.work"
ATTEMPT_TAG = "attempt.number"
MAX_ATTEMPTS_TAG = "attempt.max"
RUN_KEY_TAG = "dagster/run_key"
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class Attempt:
    """What to ask for `work` now: a run key and its tags, or (`run_key` None) why nothing."""

    run_key: str | None
    number: int
    tags: dict[str, str]
    gave_up: str | None = None
    existing: bool = False  # the key of a run there is (in flight or succeeded): the daemon skips it


def data_failure(instance, run) -> bool:
    """The run failed on what retrying cannot fix: a step raised a `Failure` that forbids retries
    (`DataFailure`), or a blocking check failed."""
    for record in instance.get_records_for_run(run.run_id, of_type=DagsterEventType.STEP_FAILURE, limit=50).records:
        data = record.event_log_entry.dagster_event.event_specific_data
        if getattr(data, "user_failure_data", None) is not None:
            return True
    checks = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION, limit=5000).records
    return any(not (e := r.event_log_entry.dagster_event.event_specific_data).passed and e.blocking for r in checks)


def _settled_failure(run) -> bool:
    return run.status == DagsterRunStatus.FAILURE and not run.is_complete_and_waiting_to_retry


def next_attempt(instance, work: str, max_attempts: int = MAX_ATTEMPTS) -> Attempt:
    """The request for `work` now. While a run of it is in flight, or once one succeeded, the key
    of that run (the daemon skips it as seen); after each failed request, the next attempt's key."""
    runs = instance.get_runs(RunsFilter(tags={WORK_TAG: work}), limit=10 * max_attempts)  # newest first
    by_key: dict[str, list] = {}
    for run in runs:
        by_key.setdefault(run.tags.get(RUN_KEY_TAG, run.run_id), []).append(run)
    failed = [key for key, group in by_key.items() if all(_settled_failure(r) for r in group)]
    number = len(failed) + 1
    tags = {WORK_TAG: work, ATTEMPT_TAG: str(number), MAX_ATTEMPTS_TAG: str(max_attempts)}
    for key in by_key:
        if key not in failed:  # succeeded, running, queued or about to be re-executed
            return Attempt(key, number, tags, existing=True)
    if runs and data_failure(instance, runs[0]):
        return Attempt(None, number - 1, tags, gave_up=f"{work}: run {runs[0].run_id} failed on what retrying cannot "
                       "fix (see its failure); not requested again")
    if len(failed) >= max_attempts:
        return Attempt(None, len(failed), tags, gave_up=f"{work}: gave up after {len(failed)} failed attempts (last run "
                       f"{runs[0].run_id}); run it again by hand once the cause is fixed")
    return Attempt(work if number == 1 else f"{work}:attempt-{number}", number, tags)


def again_after_failure(instance, trigger: str, current_work) -> list[tuple[str, Attempt]]:
    """(partition, next attempt) of the partitions whose newest run requested by `trigger` failed
    while their work is still `current_work(partition)` (a changed landing file is new work)."""
    out, seen = [], set()
    for run in instance.get_runs(RunsFilter(tags={"trigger": trigger}, statuses=[DagsterRunStatus.FAILURE]), limit=50):
        day, work = run.tags.get("dagster/partition"), run.tags.get(WORK_TAG)
        if not day or not work or work in seen or work != current_work(day):
            continue
        seen.add(work)
        attempt = next_attempt(instance, work)
        if attempt.run_key and not attempt.existing:
            out.append((day, attempt))
    return out


def attempt_note(instance, run) -> str | None:
    """For the failure alert of a run a sensor or schedule requested: `attempt k of N` and what
    happens next (Dagster re-executes it, the next tick asks again, or nobody does: giving up)."""
    if ATTEMPT_TAG not in run.tags:
        return None
    k, n = run.tags[ATTEMPT_TAG], run.tags.get(MAX_ATTEMPTS_TAG, str(MAX_ATTEMPTS))
    if run.tags.get("dagster/will_retry") == "true":
        return f"attempt {k} of {n}: Dagster re-executes the run from its failure (run retries)"
    if data_failure(instance, run):
        return f"attempt {k} of {n}: failed on what retrying cannot fix, giving up; fix the cause and run it again by hand"
    if int(k) >= int(n):
        return f"attempt {k} of {n}, giving up: run it again by hand once the cause is fixed"
    return f"attempt {k} of {n}: requested again at the next tick of {run.tags.get('trigger', 'its sensor')}"
