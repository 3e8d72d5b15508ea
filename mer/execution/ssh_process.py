"""A remote process on one SSH channel, read on the event loop without a thread.

paramiko's transport thread buffers each channel's output; a readiness wakeup tells the
loop, which takes what is buffered without blocking, so reading output never waits on
the thread pool. Only calls that can wait on the server (a large write, the exit status,
killing) go through ``run_blocking``.

Killing: closing a channel does not kill the remote process, so every command is started
as ``echo $$; exec ARGV`` in the session's shell, a process-group leader (see
remote_sh.py): the first stdout line is the group id, and a timeout or cancel sends TERM,
then KILL, to that group over a second channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import paramiko

from mer.execution.process import CHUNK, ConnectionLost, PushesOutput
from mer.execution.ssh_connection import Connection
from mer.execution.ssh_threads import run_blocking

__all__ = ["SMALL_WRITE", "SshProcess"]

# A write up to this size that fits the channel's window is sent from the loop itself.
SMALL_WRITE = 32768


class _Wakeup(threading.Event):
    """The event paramiko sets when a channel buffer gets data or closes
    (``BufferedPipe.set_event``): instead of waking a thread, it schedules one drain on
    the event loop. paramiko only calls ``set`` and ``clear``.

    NOTE: not ``Channel.fileno()``: its pipe ORs the stdout and stderr buffers without a
    common lock, so a feed on one racing a drain of the other loses the wake-up (seen
    here: a run with heavy output on both streams stalled until its timeout)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, drain: Callable[[], None]) -> None:
        super().__init__()
        self._loop = loop
        # NOTE: weak: the process holds its channel, whose buffers hold this event; a
        # strong drain made each run a reference cycle, freed only by the garbage
        # collector (with the channel, its buffers and futures: ~57 objects a run).
        self._drain = weakref.WeakMethod(drain)
        self._pending = False
        self.armed = True

    def set(self) -> None:  # any thread (paramiko's), holding that buffer's lock
        if self.armed and not self._pending:
            self._pending = True
            with contextlib.suppress(RuntimeError):  # the loop may be closed at exit
                self._loop.call_soon_threadsafe(self._run)

    def clear(self) -> None:
        pass

    def _run(self) -> None:
        # Cleared before draining: a feed from now on schedules another drain.
        self._pending = False
        drain = self._drain()
        if self.armed and drain is not None:
            drain()


Sink = Callable[[bytes], None]


class SshProcess(PushesOutput):
    """A remote process on one channel, read on the event loop itself.

    paramiko's transport thread buffers a channel's incoming data; a ``_Wakeup`` tells
    the loop, which moves whatever is buffered into asyncio StreamReaders without
    blocking. No thread waits on the channel, and a cancelled read (a worker request's
    timeout) never loses bytes. The first stdout line is the remote process group id
    (see ``build_remote_command``); it is taken off the stream here.
    """

    def __init__(self, conn: Connection, chan: paramiko.Channel, loop: asyncio.AbstractEventLoop,
                 *, input_sent: bool = False) -> None:
        self._input_sent = input_sent  # the request went out with the command (ssh.py)
        self._conn = conn
        self._chan = chan
        self.pid: int | None = None
        self._pid_line = bytearray()
        self._pid_seen = loop.create_future()
        self._out = asyncio.StreamReader(limit=1 << 30, loop=loop)
        self._err = asyncio.StreamReader(limit=1 << 30, loop=loop)
        # A oneshot run's sinks (``stream``): its output is handed over as it comes,
        # without the readers and a task to read each.
        self._sinks: tuple[Sink, Sink] | None = None
        self._ended: asyncio.Future[None] | None = None
        self._wakeup = _Wakeup(loop, self._on_ready)
        # set_event fires at once when data is already buffered or the channel closed.
        chan.in_buffer.set_event(self._wakeup)
        chan.in_stderr_buffer.set_event(self._wakeup)

    def _on_ready(self) -> None:
        chan = self._chan
        try:
            ended = chan.eof_received or chan.closed  # read first: data may precede the end
            while chan.recv_ready():
                self._stdout(chan.recv(CHUNK))
            while chan.recv_stderr_ready():
                self._give(1, chan.recv_stderr(CHUNK))
        except Exception:  # noqa: BLE001 - a broken channel is an end of stream
            ended = True
        if ended:
            self._end_of_streams()

    def _stdout(self, data: bytes) -> None:
        if self._pid_seen.done():
            self._give(0, data)
            return
        self._pid_line += data
        if b"\n" in self._pid_line:
            self._take_pid()

    def _take_pid(self) -> None:
        raw = bytes(self._pid_line)
        self._pid_line.clear()
        line, nl, rest = raw.partition(b"\n")
        try:
            self.pid = int(line) if nl else None
        except ValueError:
            self.pid = None
        if self.pid is None:  # not our wrapper's line: it is the model's output
            rest = raw
        self._pid_seen.set_result(None)
        if rest:
            self._give(0, rest)

    def _give(self, stream: int, data: bytes) -> None:
        """Output to its sink (a streamed run), else to its reader."""
        if self._sinks is None:
            (self._out if stream == 0 else self._err).feed_data(data)
            return
        try:
            self._sinks[stream](data)
        except Exception as err:  # noqa: BLE001 - the run's waiter raises it, as a reader task would
            if self._ended is not None and not self._ended.done():
                self._ended.set_exception(err)

    def stream(self, data: bytes, stdout: Sink, stderr: Sink) -> asyncio.Future[Any]:
        """A oneshot run: write ``data``, close stdin, and push the output to the sinks;
        the future is done when the output ended."""
        self._sinks = (stdout, stderr)
        self._ended = ended = asyncio.get_running_loop().create_future()
        if self._input_sent:  # a small request: it went out with the command
            return ended

        async def feed() -> None:
            # NOTE: a model may exit without reading its request; that is its business.
            with contextlib.suppress(OSError, ConnectionError, ConnectionLost):
                await self.write(data)
            with contextlib.suppress(OSError, ConnectionError, ConnectionLost):
                await self.close_stdin()

        return asyncio.gather(feed(), ended)

    async def group_id(self) -> int | None:
        """The remote process group id, once the wrapper printed it."""
        await asyncio.shield(self._pid_seen)
        return self.pid

    def _end_of_streams(self) -> None:
        self._wakeup.armed = False
        if not self._pid_seen.done():
            self._take_pid()
        self._out.feed_eof()
        self._err.feed_eof()
        if self._ended is not None and not self._ended.done():
            if self._lost():
                self._ended.set_exception(ConnectionLost("the connection dropped"))
            else:
                self._ended.set_result(None)

    def _close_channel(self) -> None:
        self._wakeup.armed = False
        self._chan.close()

    def _lost(self) -> bool:
        return not self._conn.active()

    async def write(self, data: bytes) -> None:
        chan = self._chan
        try:
            # Small writes that fit the channel's send window never block: send them
            # from the loop (saves two thread hops per run); the rest waits on a thread.
            if len(data) <= SMALL_WRITE and chan.send_ready():
                while data and chan.send_ready() and not chan.closed:
                    sent = chan.send(data)
                    if sent == 0:
                        raise BrokenPipeError("the remote process closed its input")
                    data = data[sent:]
            if data:
                await run_blocking(chan.sendall, data)
        except (OSError, paramiko.SSHException, EOFError) as err:
            if self._lost():
                raise ConnectionLost("the connection dropped") from err
            raise BrokenPipeError(str(err)) from err

    async def close_stdin(self) -> None:
        self._end_input()

    def _end_input(self) -> None:
        # Sends one small EOF message; sending never waits on the window.
        with contextlib.suppress(OSError, paramiko.SSHException, EOFError):
            self._chan.shutdown_write()
        # The request is out and the loop waits for the model: the moment to open the
        # next run's channel in the background (ssh_channels.py), off the critical path.
        self._conn.channels.refill()

    async def read_stdout(self) -> bytes:
        return await self._read(self._out)

    async def read_stderr(self) -> bytes:
        return await self._read(self._err)

    async def _read(self, reader: asyncio.StreamReader) -> bytes:
        data = await reader.read(CHUNK)
        if not data and self._lost():
            raise ConnectionLost("the connection dropped")
        return data

    async def wait(self) -> int | None:
        chan = self._chan
        # The exit status usually arrives with the end of the output: no thread hop then.
        if chan.exit_status_ready():
            code = chan.recv_exit_status()
        else:
            code = await run_blocking(chan.recv_exit_status)
        self._close_channel()
        if code == -1:
            # No exit status: the connection died, or a signal killed the process.
            if self._lost():
                raise ConnectionLost("the connection dropped before the exit status arrived")
            return None
        return int(code)

    def alive(self) -> bool:
        return not self._chan.exit_status_ready() and not self._chan.closed and not self._lost()

    async def kill(self, grace: float) -> None:
        if not self._pid_seen.done() and not self._lost():
            # Cancelled right after the start: the group id is on its way.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._pid_seen), grace)
        if self.pid is not None and not self._lost():
            await run_blocking(self._kill_group, grace)
        self._close_channel()

    def _kill_group(self, grace: float) -> None:
        def signal(sig: str) -> None:
            with contextlib.suppress(Exception):
                _, chan = self._conn.session()
                # NOTE: no "--": dash, a common /bin/sh, rejects it in `kill`.
                chan.exec_command(f"kill -{sig} -{self.pid} 2>/dev/null")
                chan.recv_exit_status()
                chan.close()

        signal("TERM")
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and not self._chan.exit_status_ready():
            time.sleep(0.02)
        signal("KILL")
