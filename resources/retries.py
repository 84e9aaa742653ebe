"""Retries of steps that reach the warehouse or the MLflow tracking store.

A store that is briefly unreachable (a restarting server, a locked SQLite file) is retried with
exponential backoff; what retrying cannot fix (bad data, a missing input, a failed gate) raises
`DataFailure`, which the retry policy lets through at once. Every retried step writes in one
transaction, or moves aliases so that repeating it changes nothing (`ModelRegistry.promote`);
the rollback, two alias writes that cannot be repeated safely, is not retried.
"""

from dagster import Backoff, Failure, Jitter, RetryPolicy

from resources.settings import _env_float, _env_int

# FLIGHTS_STORE_RETRIES retries, waiting FLIGHTS_STORE_RETRY_DELAY s, then twice that, ...
STORE_RETRY_POLICY = RetryPolicy(
    max_retries=_env_int("FLIGHTS_STORE_RETRIES", 3),
    delay=_env_float("FLIGHTS_STORE_RETRY_DELAY", 2.0),
    backoff=Backoff.EXPONENTIAL,
    jitter=Jitter.PLUS_MINUS,
)


class DataFailure(Failure):
    """A failure that retrying cannot fix: the step fails at once, whatever its retry policy."""

    def __init__(self, description: str | None = None, metadata=None):
        super().__init__(description=description, metadata=metadata, allow_retries=False)
