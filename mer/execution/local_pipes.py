"""A local oneshot run's pipes, handed straight to mer's sinks.

asyncio's streams cost a StreamReader and a reading task per pipe, and a task to write
the request: for a model that runs a millisecond, that bookkeeping was a large part of
mer's own work per run (a batch fans out on one event loop, so it caps its throughput).
Here the subprocess protocol keeps and tees each chunk as it arrives, the request is
left to the pipe transport's buffer, and one future says when the output ended.

Workers, and the clients that containers and Slurm drive, read their pipes when they
choose (line by line, framed): they keep asyncio's streams (local.py ``LocalProcess``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from mer.execution.process import PushesOutput

__all__ = ["PipedOutput", "PipedProcess", "end_group"]

Sink = Callable[[bytes], None]


class PipedOutput(asyncio.SubprocessProtocol):
    """The model's stdout (fd 1) and stderr (fd 2) into two sinks; ``exited`` is done
    when the process exited, ``ended`` when it did and both pipes closed."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.ended: asyncio.Future[None] = loop.create_future()
        self.exited: asyncio.Future[None] = loop.create_future()
        self._sinks: dict[int, Sink] = {}
        self._early: list[tuple[int, bytes]] = []  # before the sinks came
        self._open = {1, 2}
        self._transport: asyncio.SubprocessTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.SubprocessTransport)
        self._transport = transport

    def attach(self, stdout: Sink, stderr: Sink) -> None:
        self._sinks = {1: stdout, 2: stderr}
        early, self._early = self._early, []
        for fd, data in early:
            self.pipe_data_received(fd, data)

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        sink = self._sinks.get(fd)
        if sink is None:
            self._early.append((fd, data))
            return
        try:
            sink(data)
        except Exception as err:  # noqa: BLE001 - the run's waiter raises it, as a reader task would
            if not self.ended.done():
                self.ended.set_exception(err)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self._open.discard(fd)
        self._close_when_done()

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)
        self._close_when_done()

    def _close_when_done(self) -> None:
        if self._open or not self.exited.done():
            return
        if not self.ended.done():
            self.ended.set_result(None)
        # As asyncio's own stream protocol does: a transport left open warns when collected.
        if self._transport is not None:
            transport, self._transport = self._transport, None
            transport.close()


class PipedProcess(PushesOutput):
    """A local model started with ``loop.subprocess_exec`` and ``PipedOutput``."""

    def __init__(self, transport: asyncio.SubprocessTransport, pipes: PipedOutput) -> None:
        self._transport = transport
        self._pipes = pipes
        self.pid: int | None = transport.get_pid()

    def stream(self, data: bytes, stdout: Sink, stderr: Sink) -> asyncio.Future[None]:
        self._pipes.attach(stdout, stderr)
        stdin = self._transport.get_pipe_transport(0)
        if stdin is not None:
            # NOTE: a model may exit without reading its request; the pipe transport then
            # drops the rest quietly, which is the model's business.
            assert isinstance(stdin, asyncio.WriteTransport)
            stdin.write(data)
            stdin.write_eof()
        return self._pipes.ended

    async def wait(self) -> int | None:
        # Shielded: a timeout that cancels this wait must not cancel the process's own
        # future, which kill() waits on next.
        await asyncio.shield(self._pipes.exited)
        return self._transport.get_returncode()

    def alive(self) -> bool:
        return not self._pipes.exited.done()

    async def group_id(self) -> int | None:
        return self.pid  # its own session and group: start_new_session

    async def kill(self, grace: float) -> None:
        await end_group(self.pid, lambda: asyncio.shield(self._pipes.exited), grace)

    # A oneshot run's output is pushed (``stream``); nothing reads or writes it piecemeal.
    async def write(self, data: bytes) -> None:
        raise NotImplementedError("a piped run's request is written by stream()")

    async def close_stdin(self) -> None:
        raise NotImplementedError("a piped run's stdin is closed by stream()")

    async def read_stdout(self) -> bytes:
        raise NotImplementedError("a piped run's output goes to the sinks of stream()")

    async def read_stderr(self) -> bytes:
        raise NotImplementedError("a piped run's output goes to the sinks of stream()")


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


async def start_piped(command: list[str], **popen: Any) -> PipedProcess:
    """Start ``command`` with its three pipes handed to a ``PipedOutput``."""
    loop = asyncio.get_running_loop()
    transport, pipes = await loop.subprocess_exec(
        lambda: PipedOutput(loop), *command, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, **popen)
    return PipedProcess(transport, pipes)
