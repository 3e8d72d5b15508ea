"""The executor interface of the MEAL (model execution layer), in terms of mer.domain.

Services hand an Executor a RunRequest and a Server and get back a RunResult; they never
see subprocesses or paramiko. This module imports nothing heavy, so the services and the
shell can use the types without loading paramiko.

Contract:
- ``run`` never raises for a model that ran and failed: the RunResult's status says how
  it ended (succeeded, failed, timeout, cancelled, lost). It raises ExecutionError
  subclasses only when the model could not be started at all (ConnectError, HostKeyError,
  WorkerError). If the awaiting task is cancelled, the model process (local or remote)
  is killed before CancelledError propagates.
- ``sinks`` receive output as it arrives, on the event loop's thread, in chunks of bytes,
  and ``sinks.spawned`` the process group id of the process serving the run, as soon as
  it is known (a worker's for each of its runs), so that it can be killed even if mer dies.
- In ``worker`` mode the executor keeps the process alive across runs, keyed by
  (server name, RunRequest.worker_key); ``stop_worker`` ends it, ``close`` ends them all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable
from uuid import UUID

from mer.domain import RunRequest, RunResult, Server, ServerCheck, WorkerInfo

__all__ = ["Detacher", "Executor", "ExecutorFactory", "Sinks"]

Chunk = Callable[[bytes], None]


def _discard(_: bytes) -> None:
    return None


def _ignore(_: int | None) -> None:
    return None


@dataclass(frozen=True, slots=True)
class Sinks:
    """Where live output goes while a run is under way."""

    stdout: Chunk = _discard
    stderr: Chunk = _discard
    spawned: Callable[[int | None], None] = _ignore  # the process group serving the run


class Executor(Protocol):
    kind: str

    async def run(self, request: RunRequest, server: Server, sinks: Sinks | None = None) -> RunResult: ...

    async def check(self, server: Server) -> ServerCheck:
        """Reachability, latency and (ssh) whether the host key is known. Never raises
        for an unreachable server: the ServerCheck says so."""
        ...

    async def host_key(self, server: Server) -> str:
        """The fingerprint of the host key the server presents now; nothing recorded.
        Executors without host keys raise ExecutionError."""
        ...

    async def trust(self, server: Server, expect: str | None = None) -> str:
        """Fetch the server's host key and add it to the known_hosts file; returns its
        fingerprint. With ``expect`` (a fingerprint), another key is refused with
        HostKeyError and nothing is recorded."""
        ...

    async def stop_worker(self, server: Server, model: str, version: str | None = None) -> int:
        """End the model's worker(s) on that server; returns how many were stopped."""
        ...

    def workers(self) -> list[WorkerInfo]: ...

    async def kill_group(self, server: Server, pgid: int | None, mark: str | None = None) -> bool:
        """TERM the process group ``pgid`` on that server, then KILL it after the grace
        period; True when the group existed. With ``mark`` (an environment entry such
        as ``MER_OWNER=...``), only a group that has a process whose environment holds
        it is signalled (a group id reused by a stranger is left alone); ``pgid`` None
        means every group that holds it, where the executor can search (local). Works
        without the Process that started it: a later mer reaps the runs of one that died."""
        ...

    async def close(self) -> None:
        """Stop every worker and close pooled connections."""
        ...


@runtime_checkable
class Detacher(Protocol):
    """An executor that can also detach a run (kind slurm: ``run --detach``): submit it
    to a scheduler and return at once; any mer later asks how it stands."""

    async def submit(self, request: RunRequest, server: Server) -> str:
        """Submit the run; returns its job id. Raises ExecutionError."""
        ...

    async def poll(self, server: Server, run_id: UUID, job_id: str) -> RunResult:
        """QUEUED or RUNNING (nothing else set), or the run's ending with its kept
        output. Raises ExecutionError when the scheduler cannot say."""
        ...

    async def forget(self, server: Server, run_id: UUID) -> None:
        """Remove what the run left on the server (its job directory)."""
        ...

    async def cancel_job(self, server: Server, job_id: str) -> None: ...


class ExecutorFactory(Protocol):
    def __call__(self, *, known_hosts: str | None = None, output_cap: int = 1 << 20) -> Executor: ...
