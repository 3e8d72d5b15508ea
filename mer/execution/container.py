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
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shlex
import shutil
import tarfile
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from mer.domain import ContainerSpec, RunRequest, RunResult, RunStatus, Server, ServerCheck
from mer.errors import ExecutionError, WorkerError
from mer.execution import container_files as files
from mer.execution.base import ProcessExecutor
from mer.execution.hosted import ClientProcess, HostKeysOverSsh
from mer.execution.interface import Sinks
from mer.execution.local import LocalExecutor
from mer.execution.process import ConnectionLost, Process

if TYPE_CHECKING:
    from mer.execution.ssh import SshExecutor

__all__ = ["ContainerExecutor", "ContainerProcess", "container_name", "run_argv"]

DEFAULT_ENGINE = "podman"
ENGINE_TIMEOUT = 60.0  # seconds an `rm -f`, `ps` or `version` of the engine may take
# A container's own exit statuses when the engine could not run it (podman and docker).
_ENGINE_FAILED, _CANNOT_INVOKE, _NOT_FOUND = 125, 126, 127


def container_name(run_id: UUID) -> str:
    return f"mer-{run_id}"


def engine_of(server: Server) -> str:
    return server.engine or DEFAULT_ENGINE


def run_argv(engine: str, request: RunRequest, spec: ContainerSpec, scratch: str) -> list[str]:
    """The engine's ``run`` command line of one run (every value one argv word)."""
    if any(c in scratch for c in ":,"):
        raise ExecutionError(f"cannot start {request.model}@{request.version}: the scratch "
                             f"directory {scratch} holds ':' or ',', which a volume cannot; "
                             f"set MER_DATA_DIR to a plain path")
    argv = [engine, "run", "--rm", "-i", "--name", container_name(request.run_id),
            "--pull", "never", "--network", spec.network,
            "--label", f"mer.run={request.run_id}", "--label", f"mer.dir={scratch}",
            "-v", f"{scratch}/input:/data/input:ro", "-v", f"{scratch}/output:/data/output",
            "-v", f"{scratch}/log:/data/log", "-e", f"MER_RUN_ID={request.run_id}"]
    owner = request.env.get("MER_OWNER")
    if owner:
        argv += ["--label", f"mer.owner={owner}"]
    if spec.cpus is not None:
        argv += ["--cpus", f"{spec.cpus:g}"]
    if spec.memory is not None:
        argv += ["--memory", spec.memory]
    if request.workdir:
        argv += ["--workdir", request.workdir]
    for key, value in request.env.items():
        if key != "MER_OWNER":
            argv += ["-e", f"{key}={value}"]
    return [*argv, spec.image, *request.command]


def _rm_script(engine: str, name: str, grace: float) -> str:
    # podman stops with TERM, then KILL after -t seconds; docker's rm -f KILLs at once.
    wait = f" -t {int(grace)}" if engine == "podman" else ""
    return f"{shlex.quote(engine)} rm -f{wait} {shlex.quote(name)} 2>/dev/null"


# Remove the containers of a mer that died (by its owner label) and their scratch
# directories. Exit 3: there were none.
_REAP = r"""e={engine}
ids=$($e ps -aq --filter label=mer.owner={token}) || exit 1
[ -n "$ids" ] || exit 3
dirs=$($e inspect --format '{{{{index .Config.Labels "mer.dir"}}}}' $ids 2>/dev/null)
$e rm -f{wait} $ids >/dev/null 2>&1
printf '%s\n' "$dirs" | while IFS= read -r d; do
  case "${{d##*/}}" in mer-run-*|.mer-run-*) rm -rf -- "$d" ;; esac
done
exit 0
"""


class Host(Protocol):
    """Where the engine runs: this machine, or a remote host over SSH."""

    where: str

    async def prepare(self, request: RunRequest, engine: str) -> str:
        """Check the engine is there; make the run's scratch directory; its path."""
        ...
    async def spawn(self, request: RunRequest, server: Server, argv: list[str]) -> Process: ...
    async def collect(self, scratch: str, request: RunRequest, text_cap: int) -> files.Collected:
        """The result, artifacts and logs of the run; removes the scratch directory."""
        ...
    async def discard(self, scratch: str) -> None: ...
    async def shell(self, script: str) -> tuple[int, str, str]:
        """Run a short POSIX sh script there: exit status, stdout, stderr."""
        ...
    async def kill_group(self, server: Server, pgid: int | None, mark: str | None) -> bool: ...


class LocalHost:
    where = "this machine"

    def __init__(self, local: LocalExecutor) -> None:
        self.local = local

    async def prepare(self, request: RunRequest, engine: str) -> str:
        if shutil.which(engine) is None:
            raise ExecutionError(f"cannot start {request.model}@{request.version}: the container "
                                 f"engine '{engine}' is not installed on this machine")
        wanted = files.input_files(request)
        return str(await asyncio.to_thread(files.make_local_scratch, request, wanted))

    async def spawn(self, request: RunRequest, server: Server, argv: list[str]) -> Process:
        return await self.local._spawn(request, server, argv)

    async def collect(self, scratch: str, request: RunRequest, text_cap: int) -> files.Collected:
        def collect() -> files.Collected:
            try:
                return files.collect_local(Path(scratch), request.output_dir,
                                           request.artifact_cap, text_cap)
            finally:
                files.remove_local_scratch(Path(scratch))

        return await asyncio.to_thread(collect)

    async def discard(self, scratch: str) -> None:
        await asyncio.to_thread(files.remove_local_scratch, Path(scratch))

    async def shell(self, script: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            "sh", "-c", script, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        return proc.returncode or 0, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")

    async def kill_group(self, server: Server, pgid: int | None, mark: str | None) -> bool:
        return await self.local.kill_group(server, pgid, mark)


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
                self.host.shell(_rm_script(self.engine, self.name, grace)), ENGINE_TIMEOUT + grace)
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


def _spec(request: RunRequest) -> ContainerSpec:
    if request.container is None:
        raise ExecutionError(f"cannot start {request.model}@{request.version}: a model on a "
                             f"container server needs an image (`model set "
                             f"{request.model}@{request.version} image IMAGE`)")
    return request.container


class _EngineErrors:
    """A stderr sink, line-buffered, that holds back the engine's own error lines
    (``Error: ...``) until the run's end: an engine that could not start the container is
    then reported in one line (``start_failure``), not also as raw output first."""

    PREFIXES = (b"Error: ", b"Error response from daemon", b"docker: ", b"Unable to find image")

    def __init__(self, sink: Any) -> None:
        self.sink = sink
        self.buf = bytearray()
        self.held: list[bytes] = []

    def feed(self, chunk: bytes) -> None:
        self.buf += chunk
        while True:
            ends = [i for i in (self.buf.find(b"\n"), self.buf.find(b"\r")) if i >= 0]
            if not ends:
                return
            cut = min(ends) + 1
            line = bytes(self.buf[:cut])
            del self.buf[:cut]
            if line.startswith(self.PREFIXES):
                self.held.append(line)
            else:
                self.sink(line)

    def release(self, held: bool = True) -> None:
        """Pass on what is left; the held lines too unless ``held`` is False."""
        lines, self.held = (self.held if held else []), []
        if self.buf:
            lines.append(bytes(self.buf))
            self.buf.clear()
        for line in lines:
            self.sink(line)


_MISSING_MOUNT = re.compile(r"(?:statfs |bind source path does not exist: )(\S+?)(?::|$|\s)")


def start_failure(result: RunResult, request: RunRequest, engine: str, where: str) -> str | None:
    """Why the engine could not run the container, in one line; None when it ran."""
    code = result.exit_code
    if code not in (_ENGINE_FAILED, _CANNOT_INVOKE, _NOT_FOUND):
        return None
    errors = [line.strip() for line in result.stderr.splitlines() if "Error" in line]
    if not errors:
        return None
    last, spec = errors[-1], _spec(request)
    if code == _ENGINE_FAILED:
        if "image not known" in last or "No such image" in last:
            return (f"image '{spec.image}' is not on {where}; `{engine} pull` or `{engine} load` "
                    f"it there first (mer never pulls during a run)")
        missing = _MISSING_MOUNT.search(last)
        if missing:
            return f"mount path {missing.group(1)} does not exist on {where}"
        return f"{engine} could not run the container on {where}: {last.removeprefix('Error: ')}"
    if "OCI runtime" in last or "executable file not found" in last:
        program = request.command[0] if request.command else "its entrypoint"
        return f"image '{spec.image}' cannot run {program}: {last.rsplit(': ', 1)[-1]}"
    return None


class ContainerExecutor(HostKeysOverSsh, ProcessExecutor):
    kind = "container"
    HERE = "runs containers on this machine"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._kwargs = kwargs
        self._local = LocalExecutor(**kwargs)
        self._ssh: SshExecutor | None = None  # made when a remote host is first used
        self._runs: dict[UUID, ContainerProcess] = {}

    def _ssh_executor(self) -> SshExecutor:
        if self._ssh is None:
            from mer.execution.ssh import SshExecutor

            self._ssh = SshExecutor(**self._kwargs)
        return self._ssh

    def _host(self, server: Server) -> Host:
        if not server.host:
            return LocalHost(self._local)
        from mer.execution.container_remote import SshHost

        return SshHost(self._ssh_executor(), server)

    async def _spawn(self, request: RunRequest, server: Server, command: list[str]) -> ContainerProcess:
        spec = _spec(request)
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
        _spec(request)
        if request.mode == "worker":
            if request.input_files:
                raise ExecutionError(f"cannot start {request.model}@{request.version}: "
                                     f"--input-file is for oneshot runs; a worker reads its "
                                     f"requests on stdin")
            return await super().run(request, server, sinks)
        sinks = sinks or Sinks()
        errors = _EngineErrors(sinks.stderr)
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
        errors = _EngineErrors(sinks.stderr)
        try:
            worker = await super()._worker_for(request, server, replace(sinks, stderr=errors.feed))
        except WorkerError as err:
            code = _ENGINE_FAILED if errors.held else None
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
            script = _REAP.format(engine=shlex.quote(engine),
                                  token=shlex.quote(mark.partition("=")[2]),
                                  wait=" -t 0" if engine == "podman" else "")
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
        if code == _NOT_FOUND:
            message = f"the container engine '{engine}' is not installed on {host.where}"
        elif code != 0:
            message = f"{engine} version failed: {(err.strip().splitlines() or [f'exit {code}'])[-1]}"
        else:
            message = f"{engine} {out.strip()} on {host.where}"
        return ServerCheck(server=server.name, reachable=code == 0, latency_ms=latency,
                           host_key_known=known, message=message)

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            await self._local.close()
            if self._ssh is not None:
                await self._ssh.close()
