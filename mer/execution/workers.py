"""Worker processes of the process executors: a model that loads once and answers many
requests, kept alive across runs by (server name, RunRequest.worker_key).

``WorkerPool`` is the part of ``ProcessExecutor`` (base.py) that starts a worker and
waits for its ready line, sends it one framed request at a time and reads the framed
answer (JSON lines, or the original MER markers), and ends it: asked to exit, then
killed after the grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mer.domain import RunRequest, RunResult, RunStatus, Server, WorkerInfo, encode_request, utcnow
from mer.errors import WorkerError
from mer.execution.interface import Sinks
from mer.execution.output import LineReader, OutputKeeper, collect, parse_result
from mer.execution.process import ConnectionLost, Process

__all__ = ["WorkerPool"]

MER_READY, MER_START, MER_STOP, MER_EXIT = "@!#READY#!@", "@!#START#!@", "@!#STOP#!@", "@!#EXIT#!@"
READY_TIMEOUT = 120.0

_Key = tuple[str, tuple[str, str, tuple[str, ...]]]  # (server name, RunRequest.worker_key)


@dataclass
class _Worker:
    server: str
    request: RunRequest
    proc: Process
    lines: LineReader
    stderr_keep: OutputKeeper
    started_at: datetime = field(default_factory=utcnow)
    requests: int = 0
    next_id: int = 1
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    sinks: Sinks = field(default_factory=Sinks)
    stderr_task: asyncio.Task[None] | None = None


def _drain(worker: _Worker) -> asyncio.Future[None]:
    """Read a worker's stdout to its end, for nobody, from now on: it is being ended.
    A worker blocked on a full pipe cannot exit (and asyncio's wait() for a process
    returns only once its pipes closed), and a pipe left unread outlives the loop
    (see output.all_done)."""
    async def discard() -> None:
        while await worker.proc.read_stdout():
            pass

    return asyncio.ensure_future(discard())


def _is_ready(raw: bytes, framing: str) -> bool:
    text = raw.decode("utf-8", "replace").strip()
    if framing == "mer":
        return text == MER_READY
    message = parse_result(text)
    return bool(message and message.get("ready") is True)


class WorkerPool:
    """The workers of one executor; ProcessExecutor sets the attributes named here."""

    grace: float
    output_cap: int
    _workers: dict[_Key, _Worker]

    async def _spawn(self, request: RunRequest, server: Server, command: list[str]) -> Process:
        raise NotImplementedError  # ProcessExecutor's, or its backend's

    async def _worker_for(self, request: RunRequest, server: Server, sinks: Sinks) -> _Worker:
        key = (server.name, request.worker_key)
        worker = self._workers.get(key)
        if worker is not None and worker.proc.alive() and not worker.lines.eof:
            return worker
        if worker is not None:
            await self._end_worker(key)
        proc = await self._spawn(request, server, request.command)
        worker = _Worker(server=server.name, request=request, proc=proc,
                         lines=LineReader(proc.read_stdout), sinks=sinks,
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
        await collect([drain] if worker.stderr_task is None else [drain, worker.stderr_task])

    async def _end_worker(self, key: _Key) -> None:
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
