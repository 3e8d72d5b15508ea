"""The one error tree of mer. Every error a user can cause or meet is a MerError whose
message is written for that user and whose ``exit_code`` a script sees.

    MerError (exit 1)
    ├── UsageError (exit 2)            bad flags, bad arguments, bad values
    │   ├── ConfigError (exit 2)       bad settings, .env, database URL, catalog file
    │   └── NeedsConfirmation (exit 2) an edit a person confirms (a terminal asks yes/no)
    │                                  and a script confirms with a flag (--yes, --new)
    ├── NotFound                       (ModelNotFound, ServerNotFound, RunNotFound,
    │                                   WeightNotFound, PipelineNotFound)
    ├── AlreadyExists                  a unique name is taken
    ├── EditNotAllowed                 an edit without --allow-edit
    ├── ConflictError                  the row changed since it was read (optimistic lock)
    ├── WaitTimedOut                   `runs wait --timeout` ran out before the run ended
    ├── StorageError                   the database failed or cannot be reached
    │   ├── DatabaseUnreachable        the connection was refused, dropped or timed out
    │   └── RecordJournaled            a run ended while the database was unreachable:
    │                                  its record waits in the local journal
    └── ExecutionError                 running a model failed before it could report
        ├── ExecutorNotFound           no executor for a server kind
        ├── ConnectError               the server cannot be reached
        │   └── HostKeyError           unknown or changed SSH host key
        └── WorkerError                a worker did not start or broke its protocol

Lower layers translate library exceptions at their edge (``raise X(...) from exc``), so
the shell only ever catches MerError. A model that runs and fails is not an exception:
it is a RunResult with a status.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = [
    "AlreadyExists",
    "ConfigError",
    "ConflictError",
    "ConnectError",
    "DatabaseUnreachable",
    "EditNotAllowed",
    "ExecutionError",
    "ExecutorNotFound",
    "HostKeyError",
    "MerError",
    "ModelNotFound",
    "NeedsConfirmation",
    "NotFound",
    "PipelineNotFound",
    "RecordJournaled",
    "RunNotFound",
    "ServerNotFound",
    "StorageError",
    "UsageError",
    "WaitTimedOut",
    "WeightNotFound",
    "WorkerError",
    "did_you_mean",
]

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_OUTPUT_CLOSED = 141  # 128 + SIGPIPE: the reader of mer's output went away


class MerError(Exception):
    """Base of every error mer reports to a user; ``str(err)`` is the one-line message."""

    exit_code = EXIT_FAILURE


class UsageError(MerError):
    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    pass


class NeedsConfirmation(UsageError):
    """An edit that must not happen by accident (a typo that adds a weight vector, a
    removal). The message, for a script, names ``flag``; a terminal asks ``question``
    and, on yes, tries again with the flag given. ``seen`` is what the question showed
    (for weights: (model id, vector name, revision)), so the retry is checked against it."""

    def __init__(self, message: str, flag: str, question: str, seen: tuple[Any, ...] = ()) -> None:
        super().__init__(message)
        self.flag, self.question, self.seen = flag, question, seen


class NotFound(MerError):
    pass


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'linear'?)`` when a known name is close to ``name``, else ''."""
    import difflib

    close = difflib.get_close_matches(name, sorted(set(known)), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class ModelNotFound(NotFound):
    def __init__(self, ref: str, known: Iterable[str] = ()) -> None:
        super().__init__(f"model '{ref}' not found{did_you_mean(ref, known)}; see `models`")


class ServerNotFound(NotFound):
    def __init__(self, name: str, known: Iterable[str] = ()) -> None:
        super().__init__(f"server '{name}' not found{did_you_mean(name, known)}; see `servers`")


class RunNotFound(NotFound):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"run '{run_id}' not found; see `runs`")


class WeightNotFound(NotFound):
    pass


class PipelineNotFound(NotFound):
    def __init__(self, name: str, known: Iterable[str] = ()) -> None:
        super().__init__(f"pipeline '{name}' not found{did_you_mean(name, known)}; see `pipelines`")


class AlreadyExists(MerError):
    pass


class EditNotAllowed(MerError):
    def __init__(self, message: str = "editing is disabled: start mer with --allow-edit") -> None:
        super().__init__(message)


class ConflictError(MerError):
    pass


class WaitTimedOut(MerError):
    pass


class StorageError(MerError):
    pass


class DatabaseUnreachable(StorageError):
    pass


class RecordJournaled(StorageError):
    pass


class ExecutionError(MerError):
    pass


class ExecutorNotFound(ExecutionError):
    pass


class ConnectError(ExecutionError):
    pass


class HostKeyError(ConnectError):
    pass


class WorkerError(ExecutionError):
    pass
