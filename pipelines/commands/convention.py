"""The one convention of the operator commands: `main(argv) -> int`; a request the command cannot
carry out (an unknown version or day, a store that is down, an older warehouse, a setting that
contradicts the request) is one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import sys

from resources.errors import DataProblem


class Refused(RuntimeError):
    """A request the command cannot carry out, said in the message."""


def cannot_carry_out(*more: type[BaseException]) -> tuple[type[BaseException], ...]:
    """The errors that mean "this request cannot be carried out here", as opposed to a bug;
    `more`: a command's own (e.g. a Dagster instance that is not set up)."""
    from mlflow.exceptions import MlflowException  # e.g. a version the registry does not have

    from resources.registry import RegistryUnavailable
    from resources.settings import SettingError
    from resources.warehouse import WarehouseUnavailable

    return Refused, DataProblem, LookupError, WarehouseUnavailable, RegistryUnavailable, MlflowException, SettingError, *more


def refused(command: str, exc: BaseException) -> int:
    """Say why on stderr, in one line (a settings error: one line per bad variable); exit code 2."""
    from resources.settings import SettingError

    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    print(f"{command}: " + ("\n".join(lines) if isinstance(exc, SettingError) else lines[0]), file=sys.stderr)
    return 2
