"""A local oneshot run's pipes, handed straight to mer's sinks.

The model is started with ``subprocess.Popen`` and the event loop watches its two output
pipes and its pidfd itself: each chunk goes to the sinks as it arrives, the request is
written as the pipe takes it, and one future says when the output ended. asyncio's
subprocess transport costs a protocol, three pipe transports and a task with a future
per pipe to connect them, about 0.1 ms of every run here: for a model that runs a
millisecond, a large part of mer's own work (a batch fans out on one event loop, so it
capped its throughput).

Workers, and the clients that containers and Slurm drive, read their pipes when they
choose (line by line, framed): they keep asyncio's streams (local.py ``LocalProcess``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Awaitable, Callable
from typing import IO, Any

from mer.execution.process import CHUNK, PushesOutput

__all__ = ["PipedProcess", "end_group", "start_piped"]

Sink = Callable[[bytes], None]


class PipedProcess(PushesOutput):
    """A local model whose pipes and exit the running loop watches. ``exited`` is done
    when the process exited; ``stream``'s future when it did and both pipes closed."""

    def __init__(self, proc: subprocess.Popen[bytes], loop: asyncio.AbstractEventLoop) -> None:
        self._proc = proc
        self._loop = loop
        self.pid: int | None = proc.pid
        self.exited: asyncio.Future[None] = loop.create_future()
        self._ended: asyncio.Future[None] = loop.create_future()
        self._ended.add_done_callback(self._release)
        self._watched: list[tuple[int, IO[bytes]]] = []  # (fd, pipe) the loop watches
        self._open = 2  # output pipes not at their end yet
        self._left = memoryview(b"")  # of the request, what the pipe has not taken yet
        _watch_exit(proc, loop, self._exit)

    def stream(self, data: bytes, stdout: Sink, stderr: Sink) -> asyncio.Future[None]:
        assert self._proc.stdout is not None and self._proc.stderr is not None
        self._read(self._proc.stdout, stdout)
        self._read(self._proc.stderr, stderr)
        self._write(data)
        return self._ended

    def _read(self, pipe: IO[bytes], sink: Sink) -> None:
        fd = pipe.fileno()
        os.set_blocking(fd, False)

        def readable() -> None:
            try:
                chunk = os.read(fd, CHUNK)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""  # as the end of the output: the process's exit says the rest
            if not chunk:
                self._unwatch(fd, self._loop.remove_reader)
                self._open -= 1
                self._end_when_done()
                return
            try:
                sink(chunk)
            except Exception as err:  # noqa: BLE001 - the run's waiter raises it, as a reader task would
                if not self._ended.done():
                    self._ended.set_exception(err)

        self._loop.add_reader(fd, readable)
        self._watched.append((fd, pipe))

    def _write(self, data: bytes) -> None:
        """The request, as the pipe takes it; then stdin closes. A model may exit
        without reading it, which is the model's business."""
        stdin = self._proc.stdin
        assert stdin is not None
        fd = stdin.fileno()
        os.set_blocking(fd, False)
        self._left = memoryview(data)
        self._writable(fd, stdin)

    def _writable(self, fd: int, stdin: IO[bytes]) -> None:
        # NOTE: a method, not a closure: a closure that names itself (to be watched
        # again) is a reference cycle, which kept every run's process, pipes and
        # futures until the garbage collector came by (~18 objects a run).
        try:
            while self._left:
                self._left = self._left[os.write(fd, self._left):]
        except BlockingIOError:
            if (fd, stdin) not in self._watched:
                self._loop.add_writer(fd, self._writable, fd, stdin)
                self._watched.append((fd, stdin))
            return
        except OSError:
            pass  # a broken pipe: the model did not read it all
        self._left = memoryview(b"")
        if (fd, stdin) in self._watched:
            self._unwatch(fd, self._loop.remove_writer)
        else:
            stdin.close()

    def _unwatch(self, fd: int, remove: Callable[[int], Any]) -> None:
        for i, (watched, pipe) in enumerate(self._watched):
            if watched == fd:
                remove(fd)
                pipe.close()
                del self._watched[i]
                return

    def _exit(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)
        self._end_when_done()

    def _end_when_done(self) -> None:
        if not self._open and self.exited.done() and not self._ended.done():
            self._ended.set_result(None)

    def _release(self, _: asyncio.Future[None]) -> None:
        """The stream ended, failed or was given up (a timeout, a cancel): whatever the
        loop still watches is closed, even a pipe some escaped child holds open."""
        watched, self._watched = self._watched, []
        for fd, pipe in watched:
            self._loop.remove_reader(fd)
            self._loop.remove_writer(fd)
            pipe.close()
        if self._proc.stdin is not None:
            self._proc.stdin.close()

    async def wait(self) -> int | None:
        # Shielded: a timeout that cancels this wait must not cancel the process's own
        # future, which kill() waits on next.
        await asyncio.shield(self.exited)
        return self._proc.returncode

    def alive(self) -> bool:
        return not self.exited.done()

    async def group_id(self) -> int | None:
        return self.pid  # its own session and group: start_new_session

    async def kill(self, grace: float) -> None:
        await end_group(self.pid, lambda: asyncio.shield(self.exited), grace)

    # A oneshot run's output is pushed (``stream``); nothing reads or writes it piecemeal.
    async def write(self, data: bytes) -> None:
        raise NotImplementedError("a piped run's request is written by stream()")

    async def close_stdin(self) -> None:
        raise NotImplementedError("a piped run's stdin is closed by stream()")

    async def read_stdout(self) -> bytes:
        raise NotImplementedError("a piped run's output goes to the sinks of stream()")

    async def read_stderr(self) -> bytes:
        raise NotImplementedError("a piped run's output goes to the sinks of stream()")


def _watch_exit(proc: subprocess.Popen[bytes], loop: asyncio.AbstractEventLoop,
                exited: Callable[[], None]) -> None:
    """Call ``exited`` once ``proc`` exited and was reaped: when its pidfd turns readable
    (Linux 5.3+), else when a thread's wait returns."""
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        loop.run_in_executor(None, proc.wait).add_done_callback(lambda _: exited())
        return

    def reap() -> None:
        loop.remove_reader(pidfd)
        os.close(pidfd)
        proc.wait()  # it exited: this only reaps it
        exited()

    loop.add_reader(pidfd, reap)


async def end_group(pgid: int | None, exited: Callable[[], Awaitable[Any]], grace: float) -> None:
    """TERM a model's process group, wait ``grace`` seconds for ``exited()``, then KILL it
    and wait as long again."""
    _signal_group(pgid, signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(exited(), grace)
    # NOTE: KILL the group even when the leader exited: `sh -c 'sleep 999 | cat'`
    # leaves its children behind in the group otherwise.
    _signal_group(pgid, signal.SIGKILL)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(exited(), grace)


def _signal_group(pgid: int | None, sig: signal.Signals) -> None:
    if pgid is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)


def start_piped(command: list[str], **popen: Any) -> PipedProcess:
    """Start ``command`` with its three pipes, for the running loop to watch."""
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, bufsize=0, **popen)
    return PipedProcess(proc, asyncio.get_running_loop())
