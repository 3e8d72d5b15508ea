"""What a backend of the process executors supplies (local.py, ssh.py, and the clients
that containers and Slurm drive): a ``Process`` to write, read, wait for and kill, the
error that says its link broke, and the check of what is about to start."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from mer.domain import RunRequest
from mer.errors import ExecutionError, UsageError
from mer.validation import check_argv, check_env, check_text

__all__ = ["CHUNK", "ConnectionLost", "Process", "PushesOutput", "check_runnable"]

CHUNK = 65536


def check_runnable(request: RunRequest, command: list[str]) -> None:
    """Defense in depth: the services' rules again, on what is about to start, so no
    caller's command or environment becomes an option or code (mer/validation.py).
    A newline is the services' policy only: quoted, it is harmless here (``python -c``
    with a multi-line program runs)."""
    try:
        check_argv("command", command, nul_only=True)
        check_env(request.env, nul_only=True)
        check_text("workdir", request.workdir, nul_only=True)
    except UsageError as err:
        raise ExecutionError(f"cannot start {request.model}@{request.version}: {err}") from None


class ConnectionLost(Exception):
    """Raised by a backend's Process when the link to the process broke (ssh)."""


class Process(Protocol):
    pid: int | None

    async def write(self, data: bytes) -> None: ...
    async def close_stdin(self) -> None: ...
    async def read_stdout(self) -> bytes: ...  # b"" at end of stream
    async def read_stderr(self) -> bytes: ...
    async def wait(self) -> int | None: ...
    async def kill(self, grace: float) -> None:
        """TERM the whole process group, wait ``grace`` seconds, then KILL it."""
        ...
    def alive(self) -> bool: ...
    async def group_id(self) -> int | None:
        """The id of the process group the model runs in, once known."""
        ...


class PushesOutput:
    """A Process that writes a oneshot run's request and hands its output to the sinks
    itself, as it comes, where another is read by a task per pipe (local_pipes.py)."""

    def stream(self, data: bytes, stdout: Callable[[bytes], None],
               stderr: Callable[[bytes], None]) -> asyncio.Future[None]:
        """Write ``data`` and close stdin; the future is done when the output ended (a
        backend may also wait for the exit: a local process does). A timeout or a
        cancellation of the run may cancel it."""
        raise NotImplementedError
