"""A process's output as the executors read it: drained in chunks by tasks that outlive
a timeout or a cancel (``pump``, ``all_done``, ``collect``), kept as a capped head and
tail (``OutputKeeper``), split into lines of any length (``LineReader``), and the model's
JSON result found in its last line (``parse_result``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

__all__ = ["LineReader", "OutputKeeper", "all_done", "collect", "parse_result", "pump"]


class OutputKeeper:
    """Keeps the first and last ``cap/2`` bytes of a stream, counting the rest."""

    def __init__(self, cap: int) -> None:
        self.half = max(cap // 2, 1)
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.half - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            if len(self.tail) > self.half:
                del self.tail[: len(self.tail) - self.half]

    def tee(self, sink: Callable[[bytes], None]) -> Callable[[bytes], None]:
        """Keep each chunk, and hand it on to ``sink``."""

        def keep_and_send(chunk: bytes) -> None:
            self.add(chunk)
            sink(chunk)

        return keep_and_send

    def text(self) -> str:
        dropped = self.total - len(self.head) - len(self.tail)
        if dropped <= 0:
            return (self.head + self.tail).decode("utf-8", "replace")
        return (
            self.head.decode("utf-8", "replace")
            + f"\n[... {dropped} bytes not kept ...]\n"
            + self.tail.decode("utf-8", "replace")
        )

    def last_line(self) -> str:
        data = bytes(self.tail or self.head).rstrip(b"\r\n")
        return data.rsplit(b"\n", 1)[-1].decode("utf-8", "replace").strip()


def parse_result(line: str) -> Any:
    """The model's JSON result: its last stdout line when that is a JSON object."""
    if not line.startswith("{"):
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


async def all_done(tasks: Sequence[asyncio.Future[Any]]) -> None:
    """Wait for ``tasks`` like ``gather`` (the first error is raised), but a timeout or
    a cancellation stops only the waiting, not the tasks."""
    # NOTE: gather cancels its tasks when it is cancelled. The pumps must outlive that:
    # ``ProcessExecutor._stop`` lets them read the pipes to their end once the model is killed. A pipe
    # left unread keeps the process's transport open, and if that transport is collected
    # after the loop closed, it prints "Exception ignored ... Event loop is closed".
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            await task  # raises its error


async def collect(tasks: Sequence[asyncio.Future[Any]]) -> None:
    """Once the process is killed, whatever held its pipes open is gone: give the tasks
    reading them a moment to take the last bytes, then stop them."""
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 1.0)
    for t in tasks:
        t.cancel()


async def pump(
    read: Callable[[], Awaitable[bytes]], keep: OutputKeeper, sink: Callable[[bytes], None]
) -> None:
    send = keep.tee(sink)
    while chunk := await read():
        send(chunk)


class LineReader:
    """Splits a stream into lines without a length limit (a 1 MB line is fine)."""

    def __init__(self, read: Callable[[], Awaitable[bytes]]) -> None:
        self._read = read
        self._buf = bytearray()
        self.eof = False

    async def readline(self) -> bytes | None:
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                line = bytes(self._buf[: nl + 1])
                del self._buf[: nl + 1]
                return line
            if self.eof:
                if self._buf:
                    line = bytes(self._buf)
                    self._buf.clear()
                    return line
                return None
            chunk = await self._read()
            if not chunk:
                self.eof = True
            self._buf += chunk
