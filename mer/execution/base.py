"""The shared executor logic (a template method, like invoke's Runner).

``ProcessExecutor`` owns everything that does not depend on where a process runs:
writing the request, draining stdout and stderr concurrently in chunks, teeing them to
the sinks, keeping a capped head+tail copy, parsing the JSON result (output.py),
timeouts, cancellation, worker processes and their framings (workers.py). A backend
(local.py, ssh.py) only supplies ``_spawn`` returning a ``Process`` (process.py):
write/close stdin, read chunks, wait, kill.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from mer.domain import RunRequest, RunResult, RunStatus, Server, encode_request, utcnow
from mer.errors import ExecutionError
from mer.execution.interface import Sinks
from mer.execution.output import OutputKeeper, all_done, collect, parse_result, pump
from mer.execution.process import ConnectionLost, Process, PushesOutput
from mer.execution.workers import WorkerPool

__all__ = ["ProcessExecutor"]


def _tell_group(proc: Process, sinks: Sinks) -> asyncio.Future[None] | None:
    """Hand the run's process group id to ``sinks.spawned``: now when it is known (local),
    else once the remote side said it (ssh)."""
    if proc.pid is not None:
        sinks.spawned(proc.pid)
        return None

    async def tell() -> None:
        sinks.spawned(await proc.group_id())

    return asyncio.ensure_future(tell())


class ProcessExecutor(WorkerPool):
    """Runs models as processes; subclasses implement ``_spawn``."""

    kind = "abstract"

    def __init__(self, *, known_hosts: str | None = None, output_cap: int = 1 << 20,
                 grace: float = 2.0) -> None:
        self.known_hosts = known_hosts
        self.output_cap = output_cap
        self.grace = grace
        self._workers = {}

    async def _spawn(self, request: RunRequest, server: Server, command: list[str]) -> Process:
        """Start ``command``; the Process's ``pid`` is its process group id on return."""
        raise ExecutionError(f"executor kind '{self.kind}' cannot start processes")

    async def kill_group(self, server: Server, pgid: int | None, mark: str | None = None) -> bool:
        raise ExecutionError(f"executor kind '{self.kind}' cannot kill process groups")

    async def _start_oneshot(self, request: RunRequest, server: Server, data: bytes) -> Process:
        """A oneshot run's process, to be given ``data`` (the encoded request); a backend
        may start one that ``PushesOutput``."""
        return await self._spawn(request, server, request.command)

    async def run(self, request: RunRequest, server: Server, sinks: Sinks | None = None) -> RunResult:
        sinks = sinks or Sinks()
        if request.mode == "worker":
            return await self._run_worker(request, server, sinks)
        started = utcnow()
        data = encode_request(request.payload)
        proc = await self._start_oneshot(request, server, data)
        told = _tell_group(proc, sinks)
        out, err = OutputKeeper(self.output_cap), OutputKeeper(self.output_cap)
        tasks: list[asyncio.Future[Any]]
        pushed: asyncio.Future[Any] | None = None
        if isinstance(proc, PushesOutput):
            pushed = proc.stream(data, out.tee(sinks.stdout), err.tee(sinks.stderr))
            tasks = [pushed]
        else:
            async def feed() -> None:
                # NOTE: a model may exit without reading its request; that is its business.
                with contextlib.suppress(OSError, ConnectionError, ConnectionLost):
                    await proc.write(data)
                with contextlib.suppress(OSError, ConnectionError, ConnectionLost):
                    await proc.close_stdin()

            tasks = [asyncio.ensure_future(t) for t in (
                feed(), pump(proc.read_stdout, out, sinks.stdout),
                pump(proc.read_stderr, err, sinks.stderr),
            )]
        status, code, error = RunStatus.FAILED, None, None
        try:
            async with asyncio.timeout(request.timeout):
                if pushed is not None:
                    # No reader task to keep going: a timeout may cancel this future.
                    await pushed
                else:
                    await all_done(tasks)
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
        await collect(tasks)

    async def close(self) -> None:
        for key in list(self._workers):
            await self._end_worker(key)
