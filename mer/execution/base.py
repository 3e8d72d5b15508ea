"""The shared executor logic (a template method, like invoke's Runner).

``ProcessExecutor`` owns everything that does not depend on where a process runs:
writing the request, draining stdout and stderr concurrently in chunks, teeing them to
the sinks, keeping a capped head+tail copy, parsing the JSON result, timeouts,
cancellation, worker processes and their framings. A backend (local.py, ssh.py) only
supplies ``_spawn`` returning a ``Process``: write/close stdin, read chunks, wait, kill.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from mer.domain import RunRequest, RunResult, RunStatus, Server, WorkerInfo, encode_request, utcnow
from mer.errors import ExecutionError, UsageError, WorkerError
from mer.execution.interface import Sinks
from mer.validation import check_argv, check_env, check_text

__all__ = ["ConnectionLost", "OutputKeeper", "Process", "ProcessExecutor", "check_runnable"]

CHUNK = 65536
MER_READY, MER_START, MER_STOP, MER_EXIT = "@!#READY#!@", "@!#START#!@", "@!#STOP#!@", "@!#EXIT#!@"
READY_TIMEOUT = 120.0


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


def _tell_group(proc: Process, sinks: Sinks) -> asyncio.Future[None] | None:
    """Hand the run's process group id to ``sinks.spawned``: now when it is known (local),
    else once the remote side said it (ssh)."""
    if proc.pid is not None:
        sinks.spawned(proc.pid)
        return None

    async def tell() -> None:
        sinks.spawned(await proc.group_id())

    return asyncio.ensure_future(tell())


async def _all_done(tasks: Sequence[asyncio.Future[Any]]) -> None:
    """Wait for ``tasks`` like ``gather`` (the first error is raised), but a timeout or
    a cancellation stops only the waiting, not the tasks."""
    # NOTE: gather cancels its tasks when it is cancelled. The pumps must outlive that:
    # ``_stop`` lets them read the pipes to their end once the model is killed. A pipe
    # left unread keeps the process's transport open, and if that transport is collected
    # after the loop closed, it prints "Exception ignored ... Event loop is closed".
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            await task  # raises its error


async def _collect(tasks: Sequence[asyncio.Future[Any]]) -> None:
    """Once the process is killed, whatever held its pipes open is gone: give the tasks
    reading them a moment to take the last bytes, then stop them."""
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 1.0)
    for t in tasks:
        t.cancel()


def _drain(worker: _Worker) -> asyncio.Future[None]:
    """Read a worker's stdout to its end, for nobody, from now on: it is being ended.
    A worker blocked on a full pipe cannot exit (and asyncio's wait() for a process
    returns only once its pipes closed), and a pipe left unread outlives the loop
    (see _all_done)."""
    async def discard() -> None:
        while await worker.proc.read_stdout():
            pass

    return asyncio.ensure_future(discard())


async def _pump(
    read: Callable[[], Awaitable[bytes]], keep: OutputKeeper, sink: Callable[[bytes], None]
) -> None:
    while chunk := await read():
        keep.add(chunk)
        sink(chunk)


class _LineReader:
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


@dataclass
class _Worker:
    server: str
    request: RunRequest
    proc: Process
    lines: _LineReader
    stderr_keep: OutputKeeper
    started_at: datetime = field(default_factory=utcnow)
    requests: int = 0
    next_id: int = 1
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    sinks: Sinks = field(default_factory=Sinks)
    stderr_task: asyncio.Task[None] | None = None


class ProcessExecutor:
    """Runs models as processes; subclasses implement ``_spawn``."""

    kind = "abstract"

    def __init__(self, *, known_hosts: str | None = None, output_cap: int = 1 << 20,
                 grace: float = 2.0) -> None:
        self.known_hosts = known_hosts
        self.output_cap = output_cap
        self.grace = grace
        self._workers: dict[tuple[str, tuple[str, str, tuple[str, ...]]], _Worker] = {}

    async def _spawn(self, request: RunRequest, server: Server, command: list[str]) -> Process:
        """Start ``command``; the Process's ``pid`` is its process group id on return."""
        raise ExecutionError(f"executor kind '{self.kind}' cannot start processes")

    async def kill_group(self, server: Server, pgid: int | None, mark: str | None = None) -> bool:
        raise ExecutionError(f"executor kind '{self.kind}' cannot kill process groups")

    # -- oneshot --------------------------------------------------------------------------

    async def run(self, request: RunRequest, server: Server, sinks: Sinks | None = None) -> RunResult:
        sinks = sinks or Sinks()
        if request.mode == "worker":
            return await self._run_worker(request, server, sinks)
        started = utcnow()
        proc = await self._spawn(request, server, request.command)
        told = _tell_group(proc, sinks)
        data = encode_request(request.payload)
        out, err = OutputKeeper(self.output_cap), OutputKeeper(self.output_cap)

        async def feed() -> None:
            # NOTE: a model may exit without reading its request; that is its business.
            with contextlib.suppress(OSError, ConnectionError, ConnectionLost):
                await proc.write(data)
            with contextlib.suppress(OSError, ConnectionError, ConnectionLost):
                await proc.close_stdin()

        tasks = [asyncio.ensure_future(t) for t in (
            feed(), _pump(proc.read_stdout, out, sinks.stdout), _pump(proc.read_stderr, err, sinks.stderr)
        )]
        status, code, error = RunStatus.FAILED, None, None
        try:
            async with asyncio.timeout(request.timeout):
                await _all_done(tasks)
                code = await proc.wait()
            status = RunStatus.SUCCEEDED if code == 0 else RunStatus.FAILED
            if code != 0:
                error = f"exit status {code}" if code is not None else "killed by a signal"
        except TimeoutError:
            status, error = RunStatus.TIMEOUT, f"timed out after {request.timeout:g} s"
            await self._stop(proc, tasks)
        except ConnectionLost as exc:
            status, error = RunStatus.LOST, f"connection lost: {exc}"
            await self._stop(proc, tasks)
        except asyncio.CancelledError:
            await asyncio.shield(self._stop(proc, tasks))
            raise
        finally:
            if told is not None:
                told.cancel()
        return RunResult(
            status=status, exit_code=code, started_at=started, finished_at=utcnow(),
            bytes_in=len(data), bytes_out=out.total + err.total, stdout=out.text(),
            stderr=err.text(), result=parse_result(out.last_line()), error=error,
        )

    async def _stop(self, proc: Process, tasks: Sequence[asyncio.Future[Any]]) -> None:
        with contextlib.suppress(Exception):
            await proc.kill(self.grace)
        await _collect(tasks)

    # -- workers --------------------------------------------------------------------------

    async def _worker_for(self, request: RunRequest, server: Server, sinks: Sinks) -> _Worker:
        key = (server.name, request.worker_key)
        worker = self._workers.get(key)
        if worker is not None and worker.proc.alive() and not worker.lines.eof:
            return worker
        if worker is not None:
            await self._end_worker(key)
        proc = await self._spawn(request, server, request.command)
        worker = _Worker(server=server.name, request=request, proc=proc,
                         lines=_LineReader(proc.read_stdout), sinks=sinks,
                         stderr_keep=OutputKeeper(self.output_cap))
        worker.stderr_task = asyncio.ensure_future(self._drain_worker_stderr(worker))
        try:
            async with asyncio.timeout(request.timeout or READY_TIMEOUT):
                while True:
                    raw = await worker.lines.readline()
                    if raw is None:
                        code = await proc.wait()
                        raise WorkerError(
                            f"worker {request.model}@{request.version} exited with status {code} "
                            f"before it was ready: {worker.stderr_keep.last_line() or 'no message'}"
                        )
                    if _is_ready(raw, request.framing):
                        break
                    sinks.stdout(raw)  # load logs
        except TimeoutError:
            await self._kill_worker(worker)
            raise WorkerError(
                f"worker {request.model}@{request.version} printed no ready line within "
                f"{request.timeout or READY_TIMEOUT:g} s"
            ) from None
        except BaseException:
            await self._kill_worker(worker)
            raise
        self._workers[key] = worker
        return worker

    async def _drain_worker_stderr(self, worker: _Worker) -> None:
        with contextlib.suppress(Exception):
            while chunk := await worker.proc.read_stderr():
                worker.stderr_keep.add(chunk)
                worker.sinks.stderr(chunk)

    async def _run_worker(self, request: RunRequest, server: Server, sinks: Sinks) -> RunResult:
        started = utcnow()
        worker = await self._worker_for(request, server, sinks)
        async with worker.lock:
            worker.sinks = sinks
            sinks.spawned(worker.proc.pid)  # known: it answered the ready line
            err_before = worker.stderr_keep.total
            out = OutputKeeper(self.output_cap)
            status, result, error, sent = RunStatus.FAILED, None, None, 0
            try:
                async with asyncio.timeout(request.timeout):
                    if request.framing == "mer":
                        value = request.payload.get("input")
                        line = value if isinstance(value, str) else json.dumps(value)
                        data = f"{MER_START}\n{line}\n{MER_STOP}\n".encode()
                    else:
                        rid = worker.next_id
                        worker.next_id += 1
                        data = encode_request({"id": rid, **request.payload})
                    sent = len(data)
                    await worker.proc.write(data)
                    result, error = await self._read_response(worker, request, out, sinks)
                    status = RunStatus.SUCCEEDED if error is None else RunStatus.FAILED
            except TimeoutError:
                # The worker stays: a model may reject a request and print no response.
                status, error = RunStatus.TIMEOUT, f"no response within {request.timeout:g} s"
            except ConnectionLost as exc:
                status, error = RunStatus.LOST, f"connection lost: {exc}"
                await self._end_worker((server.name, request.worker_key))
            except (OSError, ConnectionError) as exc:
                status, error = RunStatus.FAILED, f"worker is gone: {exc}"
                await self._end_worker((server.name, request.worker_key))
            except asyncio.CancelledError:
                # Its state is unknown after an interrupted request: end it.
                await asyncio.shield(self._end_worker((server.name, request.worker_key)))
                raise
            finally:
                worker.sinks = Sinks()
            worker.requests += 1
            err_total = worker.stderr_keep.total - err_before
        return RunResult(
            status=status, exit_code=None, started_at=started, finished_at=utcnow(),
            bytes_in=sent, bytes_out=out.total + err_total, stdout=out.text(),
            stderr=worker.stderr_keep.text() if err_total else "", result=result, error=error,
        )

    async def _read_response(
        self, worker: _Worker, request: RunRequest, out: OutputKeeper, sinks: Sinks
    ) -> tuple[Any, str | None]:
        inside: list[str] | None = None
        while True:
            raw = await worker.lines.readline()
            if raw is None:
                code = await worker.proc.wait()
                await self._end_worker((worker.server, request.worker_key))
                return None, f"worker exited with status {code} during the request"
            out.add(raw)
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            if request.framing == "mer":
                if inside is None:
                    if text == MER_START:
                        inside = []
                    else:
                        sinks.stdout(raw)
                elif text == MER_STOP:
                    answer = "\n".join(inside)
                    with contextlib.suppress(ValueError):
                        return json.loads(answer), None
                    return answer, None
                else:
                    inside.append(text)
                    sinks.stdout(raw)
                continue
            message = parse_result(text)
            if message is not None and "id" in message and message["id"] == worker.next_id - 1:
                if "error" in message and message["error"] is not None:
                    return message.get("result"), str(message["error"])
                # Shown like a oneshot model's last line: the result itself, as JSON.
                sinks.stdout(json.dumps(message.get("result")).encode() + b"\n")
                return message.get("result"), None
            sinks.stdout(raw)  # a log line, or a late answer to an earlier request

    async def _kill_worker(self, worker: _Worker, drain: asyncio.Future[None] | None = None) -> None:
        drain = drain or _drain(worker)
        with contextlib.suppress(Exception):
            await worker.proc.kill(self.grace)
        await _collect([drain] if worker.stderr_task is None else [drain, worker.stderr_task])

    async def _end_worker(self, key: tuple[str, tuple[str, str, tuple[str, ...]]]) -> None:
        worker = self._workers.pop(key, None)
        if worker is None:
            return
        framing = worker.request.framing
        drain = _drain(worker)
        if worker.proc.alive():
            with contextlib.suppress(Exception):
                await worker.proc.write(
                    (MER_EXIT + "\n").encode() if framing == "mer" else b'{"exit": true}\n'
                )
                await worker.proc.close_stdin()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(worker.proc.wait(), self.grace)
        await self._kill_worker(worker, drain)

    async def stop_worker(self, server: Server, model: str, version: str | None = None) -> int:
        keys = [k for k in self._workers
                if k[0] == server.name and k[1][0] == model and (version is None or k[1][1] == version)]
        for key in keys:
            await self._end_worker(key)
        return len(keys)

    def workers(self) -> list[WorkerInfo]:
        return [
            WorkerInfo(server=w.server, model=w.request.model, version=w.request.version,
                       pid=w.proc.pid, started_at=w.started_at, requests=w.requests)
            for w in self._workers.values() if w.proc.alive()
        ]

    async def close(self) -> None:
        for key in list(self._workers):
            await self._end_worker(key)


def _is_ready(raw: bytes, framing: str) -> bool:
    text = raw.decode("utf-8", "replace").strip()
    if framing == "mer":
        return text == MER_READY
    message = parse_result(text)
    return bool(message and message.get("ready") is True)
