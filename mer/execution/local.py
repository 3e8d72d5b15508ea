"""The local executor: models run as child processes of mer on this machine.

argv without a shell; stdin is always a pipe (mer's own stdin may be a piped script that
a model must never eat); each model gets its own session and process group, so a
timeout or Ctrl-C can TERM, then KILL, everything it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any, TypeVarTuple

from mer.domain import RunRequest, Server, ServerCheck
from mer.errors import ExecutionError
from mer.execution.base import ProcessExecutor
from mer.execution.local_pipes import PipedProcess, end_group, start_piped
from mer.execution.process import CHUNK, check_runnable

__all__ = ["LocalExecutor", "LocalProcess", "group_has_mark"]

POLL = 0.05
Ts = TypeVarTuple("Ts")


def _group_members(pgid: int) -> list[int]:
    """Pids whose process group is ``pgid``, read from /proc."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue  # gone meanwhile
        # NOTE: after the last ')': the command name may hold spaces and parentheses.
        fields = stat.rsplit(b")", 1)[-1].split()
        if len(fields) > 2 and int(fields[2]) == pgid:
            found.append(int(name))
    return found


def _marked(pid: int | str, mark: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return mark in fh.read().split(b"\0")
    except OSError:
        return False


def group_has_mark(pgid: int, mark: str | None) -> bool:
    """Whether group ``pgid`` exists and, with ``mark`` (an environment entry such as
    MER_OWNER=...), holds a process whose environment has it. Without /proc: existence only."""
    if not os.path.isdir("/proc/self"):
        return _group_exists(pgid)
    members = _group_members(pgid)
    if mark is None:
        return bool(members)
    return any(_marked(pid, mark.encode()) for pid in members)


def marked_groups(mark: str) -> set[int]:
    """The process groups that hold a process whose environment has ``mark``."""
    groups = set()
    for name in os.listdir("/proc") if os.path.isdir("/proc/self") else ():
        if name.isdigit() and _marked(name, mark.encode()):
            with contextlib.suppress(OSError):
                groups.add(os.getpgid(int(name)))
    return groups


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LocalProcess:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = proc
        self.pid: int | None = proc.pid

    async def write(self, data: bytes) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(data)
        await self._proc.stdin.drain()

    async def close_stdin(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        with contextlib.suppress(OSError, ConnectionError):
            await self._proc.stdin.wait_closed()

    async def read_stdout(self) -> bytes:
        assert self._proc.stdout is not None
        return await self._proc.stdout.read(CHUNK)

    async def read_stderr(self) -> bytes:
        assert self._proc.stderr is not None
        return await self._proc.stderr.read(CHUNK)

    async def wait(self) -> int | None:
        return await self._proc.wait()

    def alive(self) -> bool:
        return self._proc.returncode is None

    async def group_id(self) -> int | None:
        return self.pid  # its own session and group: start_new_session

    async def kill(self, grace: float) -> None:
        await end_group(self._proc.pid, self._proc.wait, grace)


class _PidfdChildWatcher(asyncio.AbstractChildWatcher):
    """Python 3.12's pidfd child watcher, for 3.11: the running loop itself watches
    each child's pidfd. 3.11's default (ThreadedChildWatcher) starts a thread per child
    to wait for its exit, which cost ~0.1 ms of every run here; its own
    PidfdChildWatcher is bound to one loop, and tests and benchmarks run several."""

    def add_child_handler(self, pid: int, callback: Callable[[int, int, *Ts], object],
                          *args: *Ts) -> None:
        loop = asyncio.get_running_loop()
        pidfd = os.pidfd_open(pid)
        loop.add_reader(pidfd, self._reap, loop, pid, pidfd, callback, args)

    @staticmethod
    def _reap(loop: asyncio.AbstractEventLoop, pid: int, pidfd: int,
              callback: Callable[[int, int, *Ts], object], args: tuple[*Ts]) -> None:
        loop.remove_reader(pidfd)
        try:
            _, status = os.waitpid(pid, 0)
            code = os.waitstatus_to_exitcode(status)
        except ChildProcessError:  # reaped elsewhere
            code = 255
        os.close(pidfd)
        callback(pid, code, *args)

    def remove_child_handler(self, pid: int) -> bool:
        return False

    def attach_loop(self, loop: asyncio.AbstractEventLoop | None) -> None:
        pass

    def close(self) -> None:
        pass

    def is_active(self) -> bool:
        return True

    def __enter__(self) -> _PidfdChildWatcher:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


def _watch_children_with_pidfd() -> None:
    """Install _PidfdChildWatcher on 3.11 when the kernel has pidfds (Linux 5.3+)."""
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if not isinstance(asyncio.get_child_watcher(), _PidfdChildWatcher):
            asyncio.set_child_watcher(_PidfdChildWatcher())


def _popen(request: RunRequest) -> dict[str, Any]:
    """Where and how a model starts: its own session (and so process group)."""
    # NOTE: with mer's own environment (env=None) the child inherits it as it is;
    # a dict of it is encoded again for every spawn (~0.2 ms a run here).
    extra = {k: v for k, v in request.env.items() if os.environ.get(k) != v}
    return dict(cwd=request.workdir or None, env={**os.environ, **extra} if extra else None,
                start_new_session=True)


@contextlib.contextmanager
def _starting(request: RunRequest, command: list[str]) -> Iterator[None]:
    """A model that cannot start, said in one line."""
    name = f"{request.model}@{request.version}"
    try:
        yield
    except FileNotFoundError as err:
        missing = err.filename if err.filename else command[0]
        if request.workdir and not os.path.isdir(request.workdir):
            missing = request.workdir
        raise ExecutionError(f"cannot start {name}: {missing} not found") from err
    except PermissionError as err:
        raise ExecutionError(f"cannot start {name}: {command[0]} is not executable") from err
    except OSError as err:
        raise ExecutionError(f"cannot start {name}: {err}") from err
    except ValueError as err:  # an embedded NUL or '=' that slipped past the checks
        raise ExecutionError(f"cannot start {name}: {err}") from err


class LocalExecutor(ProcessExecutor):
    kind = "local"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _watch_children_with_pidfd()

    async def _spawn(self, request: RunRequest, server: Server, command: list[str]) -> LocalProcess:
        """A process whose pipes are read when its reader chooses (a worker, the client
        of a container or of Slurm)."""
        check_runnable(request, command)
        with _starting(request, command):
            proc = await asyncio.create_subprocess_exec(
                *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, **_popen(request))
        return LocalProcess(proc)

    async def _start_oneshot(self, request: RunRequest, server: Server, data: bytes) -> PipedProcess:
        """A oneshot run: its output pushed to the sinks as it comes (local_pipes.py)."""
        check_runnable(request, request.command)
        with _starting(request, request.command):
            return start_piped(request.command, **_popen(request))

    async def check(self, server: Server) -> ServerCheck:
        t0 = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            "true", stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL
        )
        await proc.wait()
        return ServerCheck(server=server.name, reachable=True,
                           latency_ms=(time.perf_counter() - t0) * 1000, message="this machine")

    async def host_key(self, server: Server) -> str:
        raise ExecutionError(f"server '{server.name}' is local: it has no host key to trust")

    async def trust(self, server: Server, expect: str | None = None) -> str:
        return await self.host_key(server)

    async def kill_group(self, server: Server, pgid: int | None, mark: str | None = None) -> bool:
        if pgid is None:  # not recorded: every group that carries the mark
            killed = [await self.kill_group(server, g, mark) for g in marked_groups(mark)] if mark else []
            return any(killed)
        # Never group 0 (os.killpg(0) is our own group), init's, or mer's own group.
        if pgid <= 1 or pgid == os.getpgrp() or not group_has_mark(pgid, mark):
            return False
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        while time.monotonic() < deadline and _group_exists(pgid):
            await asyncio.sleep(POLL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        return True
