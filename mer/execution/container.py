"""The container executor: models shipped as images run through an engine's CLI (podman
or docker), on this machine or on a remote host over the pooled SSH connection.

A container run is a process: ``podman run -i --rm --name mer-<run id> ... IMAGE ARGV``,
started by the local executor's or the ssh executor's own process machinery, so the
request on stdin, the framings (a worker is a long-lived ``run -i`` container), live
output, timeouts and the process-group kill paths are theirs. What this module adds:

- the run's files (container_files.py): /data/input, /data/output, /data/log mounted
  from a scratch directory; afterwards result.json is the result, the other output
  files the run's artifacts, the logs part of its stderr;
- the container's removal: killing the engine's client does not stop a container (its
  monitor, conmon, lives on), so a timeout or Ctrl-C removes it by its name (``rm -f``),
  and ``kill_group`` (the reaper's, for a mer that died) removes every container
  labelled with that mer's owner token;
- one line for what keeps a container from starting: a missing image (mer never pulls
  during a run: a pull would eat the run's timeout), an engine that is not installed, a
  mount path that does not exist.

The engine's command lines and what its errors mean are container_engine.py's; where
the engine runs (this machine, or a host over SSH) container_host.py's and
container_remote.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import tarfile
import time
from dataclasses import replace
from typing import Any
from uuid import UUID

from mer.domain import RunRequest, RunResult, RunStatus, Server, ServerCheck
from mer.errors import ExecutionError, WorkerError
from mer.execution import container_files as files
from mer.execution.base import ProcessExecutor
from mer.execution.container_engine import (
    ENGINE_FAILED,
    ENGINE_TIMEOUT,
    NOT_FOUND,
    EngineErrors,
    container_name,
    container_spec,
    engine_of,
    reap_script,
    rm_script,
    run_argv,
    start_failure,
)
from mer.execution.container_host import Host, LocalHost
from mer.execution.hosted import ClientProcess, HostKeysOverSsh
from mer.execution.interface import Sinks
from mer.execution.process import ConnectionLost, Process

__all__ = ["ContainerExecutor", "ContainerProcess"]


class ContainerProcess(ClientProcess):
    """The engine's client process of one run (or one worker), and its container."""

    def __init__(self, inner: Process, host: Host, engine: str, name: str, scratch: str,
                 worker: bool) -> None:
        super().__init__(inner)
        self.host, self.engine, self.name = host, engine, name
        self.scratch, self.worker = scratch, worker
        self.discarded = False

    async def _remove(self, grace: float) -> bool:
        """``rm -f`` the container; whether there was one to remove."""
        try:
            code, out, _ = await asyncio.wait_for(
                self.host.shell(rm_script(self.engine, self.name, grace)), ENGINE_TIMEOUT + grace)
        except (OSError, ConnectionLost, ExecutionError, TimeoutError):
            return False
        return code == 0 and bool(out.strip())

    async def kill(self, grace: float) -> None:
        """Stop and remove the container (TERM, KILL after ``grace``), then end the
        client. A container the client created after the first ``rm`` (a cancel right
        after the start) is removed once the client is gone."""
        racing = self.inner.alive()
        removed = await self._remove(grace)
        with contextlib.suppress(Exception):
            await self.inner.kill(grace)
        if racing and not removed:
            await self._remove(0)
        if self.worker:
            await self.discard()

    async def discard(self) -> None:
        if not self.discarded:
            self.discarded = True
            with contextlib.suppress(Exception):
                await self.host.discard(self.scratch)


class ContainerExecutor(HostKeysOverSsh, ProcessExecutor):
    kind = "container"
    HERE = "runs containers on this machine"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._runs: dict[UUID, ContainerProcess] = {}

    def _host(self, server: Server) -> Host:
        if not server.host:
            return LocalHost(self._local)
        from mer.execution.container_remote import SshHost

        return SshHost(self._ssh_executor(), server)

    async def _spawn(self, request: RunRequest, server: Server, command: list[str]) -> ContainerProcess:
        spec = container_spec(request)
        host, engine = self._host(server), engine_of(server)
        scratch = await host.prepare(request, engine)
        try:
            argv = run_argv(engine, request, spec, scratch)
            # The client runs with mer's mark only (the reaper finds it by MER_OWNER); the
            # model's environment and workdir are the container's.
            client = replace(request, env={k: v for k, v in request.env.items() if k == "MER_OWNER"},
                             workdir=None)
            inner = await host.spawn(client, server, argv)
        except BaseException:
            await asyncio.shield(host.discard(scratch))
            raise
        proc = ContainerProcess(inner, host, engine, container_name(request.run_id), scratch,
                                worker=request.mode == "worker")
        if request.mode != "worker":
            self._runs[request.run_id] = proc
        return proc

    async def run(self, request: RunRequest, server: Server, sinks: Sinks | None = None) -> RunResult:
        container_spec(request)
        if request.mode == "worker":
            if request.input_files:
                raise ExecutionError(f"cannot start {request.model}@{request.version}: "
                                     f"--input-file is for oneshot runs; a worker reads its "
                                     f"requests on stdin")
            return await super().run(request, server, sinks)
        sinks = sinks or Sinks()
        errors = EngineErrors(sinks.stderr)
        try:
            result = await super().run(request, server, replace(sinks, stderr=errors.feed))
        except BaseException:
            errors.release()
            proc = self._runs.pop(request.run_id, None)
            if proc is not None:
                await asyncio.shield(proc.discard())
            raise
        proc = self._runs.pop(request.run_id)
        try:
            failure = start_failure(result, request, proc.engine, proc.host.where)
            errors.release(held=failure is None)
            if failure is not None:
                raise ExecutionError(f"cannot start {request.model}@{request.version}: {failure}")
            if result.status is not RunStatus.LOST:
                await self._collect(proc, request, result)
        finally:
            await asyncio.shield(proc.discard())
        return result

    async def _worker_for(self, request: RunRequest, server: Server, sinks: Sinks) -> Any:
        """As for a oneshot run: an engine that cannot start the worker is one line."""
        errors = EngineErrors(sinks.stderr)
        try:
            worker = await super()._worker_for(request, server, replace(sinks, stderr=errors.feed))
        except WorkerError as err:
            code = ENGINE_FAILED if errors.held else None
            stderr = b"".join(errors.held).decode("utf-8", "replace")
            failure = start_failure(RunResult(RunStatus.FAILED, exit_code=code, stderr=stderr),
                                    request, engine_of(server), self._host(server).where)
            errors.release(held=failure is None)
            if failure is None:
                raise
            raise ExecutionError(f"cannot start {request.model}@{request.version}: {failure}") from err
        except BaseException:
            errors.release()
            raise
        errors.release()
        return worker

    async def _collect(self, proc: ContainerProcess, request: RunRequest, result: RunResult) -> None:
        """Add result.json, the artifacts and the logs to ``result``."""
        try:
            got = await proc.host.collect(proc.scratch, request, self.output_cap)
            proc.discarded = True
        except (OSError, ConnectionLost, ExecutionError, tarfile.TarError) as err:
            result.status = RunStatus.FAILED
            result.error = f"collecting /data/output failed: {err}"
            return
        if got.result is not files.NO_RESULT:
            result.result = got.result
        result.artifacts = got.artifacts
        if got.logs:
            sep = "" if not result.stderr or result.stderr.endswith("\n") else "\n"
            result.stderr += sep + got.logs

    async def kill_group(self, server: Server, pgid: int | None, mark: str | None = None) -> bool:
        """The engine's client (by its process group) and every container of the mer
        whose mark is ``mark`` (by its owner label), with their scratch directories."""
        host, engine = self._host(server), engine_of(server)
        code = 3
        if mark and mark.startswith("MER_OWNER="):
            # The containers first: a client whose container is gone ends by itself, while
            # one whose container ignores TERM would hold the kill for the whole grace.
            script = reap_script(engine, mark.partition("=")[2])
            code, _, err = await asyncio.wait_for(host.shell(script), ENGINE_TIMEOUT)
            if code not in (0, 3):
                raise ExecutionError(f"removing the containers of a dead mer on {host.where} "
                                     f"failed: {err.strip() or f'exit status {code}'}")
        killed = await host.kill_group(server, pgid, mark)
        return killed or code == 0

    async def check(self, server: Server) -> ServerCheck:
        host, engine = self._host(server), engine_of(server)
        known: bool | None = None
        if server.host:
            reach = await self._ssh_executor().check(server)
            if not reach.reachable or reach.host_key_known is False:
                return reach
            known = True
        t0 = time.perf_counter()
        quoted = shlex.quote(engine)
        try:
            code, out, err = await asyncio.wait_for(host.shell(
                f"command -v {quoted} >/dev/null 2>&1 || exit 127; "
                f"{quoted} version --format '{{{{.Client.Version}}}}'"), ENGINE_TIMEOUT)
        except (OSError, ConnectionLost, ExecutionError, TimeoutError) as exc:
            return ServerCheck(server=server.name, reachable=False, host_key_known=known,
                               message=str(exc))
        latency = (time.perf_counter() - t0) * 1000
        if code == NOT_FOUND:
            message = f"the container engine '{engine}' is not installed on {host.where}"
        elif code != 0:
            message = f"{engine} version failed: {(err.strip().splitlines() or [f'exit {code}'])[-1]}"
        else:
            message = f"{engine} {out.strip()} on {host.where}"
        return ServerCheck(server=server.name, reachable=code == 0, latency_ms=latency,
                           host_key_known=known, message=message)

