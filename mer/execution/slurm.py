"""The Slurm executor (``--kind slurm``): Slurm is the engine, mer starts its client.

A run is a process started through ``srun`` (slurm_srun.py): on this machine when the
server has no host, else on its login node over the ssh executor's pooled connection.
So the request on stdin, live output, the framings (a worker is one long-lived srun
step), timeouts and the process-group kill paths are the local and ssh executors' own;
this module adds the job: its id (kept in the run's record), its options (partition,
account, ``--time`` from the run's timeout, the server's ``slurm_args``), and ``scancel``
when a run is cut short, so no job outlives its run.

Detached runs (``run --detach``) go through ``sbatch`` (slurm_batch.py): ``submit``
returns the job id at once; ``poll`` tells how the job stands and, once it ended, its
kept output; ``forget`` removes its job directory.

The Slurm client finds its cluster as it always does (``/etc/slurm/slurm.conf``, or
``SLURM_CONF`` in mer's environment, which every srun and sbatch here inherits).
"""

from __future__ import annotations

import asyncio
import re
import shlex
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any
from uuid import UUID

from mer.domain import RunRequest, RunResult, RunStatus, Server, ServerCheck, encode_request
from mer.errors import ExecutionError
from mer.execution import slurm_batch as batch
from mer.execution.base import ProcessExecutor
from mer.execution.container_host import LocalHost
from mer.execution.hosted import HostKeysOverSsh
from mer.execution.interface import Sinks
from mer.execution.process import ConnectionLost, Process, check_runnable
from mer.execution.slurm_srun import SrunProcess, job_name, srun_argv

__all__ = ["SlurmExecutor"]

CLIENT_TIMEOUT = 60.0  # seconds a sinfo, sbatch, squeue or scancel may take


class _Here(LocalHost):
    """The Slurm client commands on this machine."""

    async def run(self, script: str, stdin: bytes = b"") -> tuple[int, bytes, str]:
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh", "-c", script, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate(stdin)
        return proc.returncode or 0, out, err.decode("utf-8", "replace")


class _HeldStderr:
    """srun's stderr until the model has started: a srun that could not start it (an
    unknown partition, a missing program) becomes one error line, not raw output too."""

    def __init__(self, sink: Any) -> None:
        self.sink = sink
        self.held = bytearray()
        self.is_open = False

    def feed(self, chunk: bytes) -> None:
        if self.is_open:
            self.sink(chunk)
        else:
            self.held += chunk

    def open(self) -> None:
        if not self.is_open:
            self.is_open = True
            if self.held:
                self.sink(bytes(self.held))


# srun's own report of how the task ended: true, but not why it could not start.
_TASK_ENDED = re.compile(r"srun: error: \S+: tasks? [0-9,-]+: ")


def _why(held: bytes, code: int | None, where: str) -> str:
    lines = [ln.strip() for ln in held.decode("utf-8", "replace").splitlines()
             if ln.strip() and not _TASK_ENDED.match(ln.strip())]
    last = lines[-1] if lines else f"srun exited with status {code}"
    if code == 127 and "srun" in last and "not found" in last:
        return f"the Slurm client (srun) is not installed on {where}"
    return last.replace("srun: error: ", "srun: ", 1)


def _sinfo_says(code: int, out: str, err: str, server: Server, where: str) -> tuple[bool, str]:
    """(reachable, message) from ``sinfo --version`` and ``sinfo -h -o '%P %a %D %t'``."""
    lines = out.strip().splitlines()
    if code == 127:
        return False, f"the Slurm client (sinfo) is not installed on {where}"
    if code != 0:
        return False, f"sinfo on {where} failed: {(err.strip().splitlines() or [f'exit {code}'])[-1]}"
    if len(lines) < 2:
        return False, f"no partition {server.partition or ''} on {where}".replace("  ", " ")
    parts = [p for p in (ln.split() for ln in lines[1:]) if len(p) == 4]
    return True, f"{lines[0]} on {where}; " + "; ".join(
        f"partition {p[0].rstrip('*')}{' (default)' if p[0].endswith('*') else ''} {p[1]}: "
        f"{p[2]} node(s) {p[3]}" for p in parts)


class SlurmExecutor(HostKeysOverSsh, ProcessExecutor):
    kind = "slurm"
    HERE = "runs the Slurm client on this machine"

    def __init__(self, *, ssh_config: str | None = None, data_dir: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(ssh_config=ssh_config, **kwargs)
        # Detached runs' job directories here (None: ~/.mer/jobs, as on a login node).
        self.jobs_dir = str(Path(data_dir) / "jobs") if data_dir else None
        self._held: dict[UUID, _HeldStderr] = {}
        self._runs: dict[UUID, SrunProcess] = {}

    def _client(self, server: Server) -> Any:
        """Where the Slurm client commands run: here, or on the login node."""
        if not server.host:
            return _Here(self._local)
        from mer.execution.slurm_login import LoginNode  # paramiko: only for a login node

        return LoginNode(self._ssh_executor(), server)

    def _root(self, server: Server) -> str | None:
        return None if server.host else self.jobs_dir

    async def _shell(self, client: Any, script: str, stdin: bytes = b"") -> tuple[int, bytes, str]:
        try:
            code, out, err = await asyncio.wait_for(client.run(script, stdin), CLIENT_TIMEOUT)
        except TimeoutError:
            raise ExecutionError(f"the Slurm client on {client.where} did not answer within "
                                 f"{CLIENT_TIMEOUT:g} s") from None
        except (OSError, ConnectionLost) as err:
            raise ExecutionError(f"running the Slurm client on {client.where} failed: {err}") from err
        return code, out, err

    # -- srun: oneshot runs and workers -----------------------------------------------------

    async def _spawn(self, request: RunRequest, server: Server, command: list[str]) -> SrunProcess:
        ref = f"{request.model}@{request.version}"
        check_runnable(request, command)
        if not server.host and shutil.which("srun") is None:
            raise ExecutionError(f"cannot start {ref}: the Slurm client (srun) is not installed on "
                                 f"this machine; see `server ping {server.name}`")
        client = self._client(server)
        # The model's workdir is the task's (it changes there on the node); srun itself
        # runs where mer is, or in the login user's home.
        inner: Process = await client.spawn(replace(request, workdir=None), server,
                                            srun_argv(server, request, command))
        held = self._held.get(request.run_id)
        proc = SrunProcess(inner, client.run, job_name(request.run_id),
                           on_start=held.open if held is not None else None)
        if request.mode != "worker":
            self._runs[request.run_id] = proc
        return proc

    async def run(self, request: RunRequest, server: Server, sinks: Sinks | None = None) -> RunResult:
        if request.container is not None:
            raise ExecutionError(f"cannot start {request.model}@{request.version}: it runs an image; "
                                 f"give it a server of kind container")
        sinks = sinks or Sinks()
        if request.mode == "worker":
            result = await super().run(request, server, sinks)
            worker = self._workers.get((server.name, request.worker_key))
            result.job_id = getattr(worker.proc, "job_id", None) if worker is not None else None
            return result
        held = self._held[request.run_id] = _HeldStderr(sinks.stderr)
        try:
            result = await super().run(request, server, replace(sinks, stderr=held.feed))
        except BaseException:
            held.open()
            raise
        finally:
            del self._held[request.run_id]
            proc = self._runs.pop(request.run_id, None)
        if proc is not None and not proc.started and result.status is RunStatus.FAILED:
            where = server.host or "this machine"
            raise ExecutionError(f"cannot start {request.model}@{request.version} on {server.name}: "
                                 f"{_why(bytes(held.held), result.exit_code, where)}")
        held.open()
        result.job_id = proc.job_id if proc is not None else None
        return result

    # -- sbatch: detached runs --------------------------------------------------------------

    async def submit(self, request: RunRequest, server: Server) -> str:
        """sbatch the run; returns its job id at once. Raises ExecutionError."""
        check_runnable(request, request.command)
        if request.env and "=" in request.command[0]:  # env would take it for an assignment
            raise ExecutionError(f"cannot start {request.model}@{request.version}: command: the "
                                 f"program {request.command[0]!r} contains '='")
        client = self._client(server)
        script = batch.submit_script(self._root(server), request, server)
        code, out, err = await self._shell(client, script, encode_request(request.payload))
        return batch.parse_job_id(code, out.decode("utf-8", "replace"), err, client.where)

    async def poll(self, server: Server, run_id: UUID, job_id: str) -> RunResult:
        """How a detached run stands: QUEUED or RUNNING (nothing else set), or its ending
        with its kept output. Raises ExecutionError when the Slurm client cannot say."""
        client, root = self._client(server), self._root(server)
        code, out, err = await self._shell(client, batch.poll_script(root, run_id, job_id))
        if code != 0:
            raise ExecutionError(f"reading Slurm job {job_id} on {client.where} failed: "
                                 f"{(err.strip().splitlines() or [f'exit status {code}'])[-1]}")
        status, exit_code, error = batch.parse_state(out.decode("utf-8", "replace"))
        if status in (RunStatus.QUEUED, RunStatus.RUNNING):
            return RunResult(status=status, job_id=job_id)
        _, data, _ = await self._shell(client, batch.collect_script(root, run_id, self.output_cap))
        return batch.final_result(status, exit_code, error,
                                  batch.parse_collected(data, self.output_cap), job_id)

    async def forget(self, server: Server, run_id: UUID) -> None:
        """Remove a detached run's job directory (its record holds the kept output)."""
        await self._shell(self._client(server), batch.forget_script(self._root(server), run_id))

    async def cancel_job(self, server: Server, job_id: str) -> None:
        if job_id.isdigit():
            await self._shell(self._client(server), f"scancel {job_id}")

    # -- the rest of the interface ----------------------------------------------------------

    async def kill_group(self, server: Server, pgid: int | None, mark: str | None = None) -> bool:
        """The srun client of a mer that died: TERM makes it cancel its job."""
        return bool(await self._client(server).kill_group(server, pgid, mark))

    async def check(self, server: Server) -> ServerCheck:
        known: bool | None = None
        if server.host:
            reach = await self._ssh_executor().check(server)
            if not reach.reachable or reach.host_key_known is False:
                return reach
            known = True
        client = self._client(server)
        part = f" -p {shlex.quote(server.partition)}" if server.partition else ""
        script = ("command -v sinfo >/dev/null 2>&1 || exit 127; sinfo --version && "
                  f"sinfo -h{part} -o '%P %a %D %t'")
        t0 = time.perf_counter()
        try:
            code, out, err = await self._shell(client, script)
        except ExecutionError as exc:
            return ServerCheck(server=server.name, reachable=False, host_key_known=known,
                               message=str(exc))
        latency = (time.perf_counter() - t0) * 1000
        ok, message = _sinfo_says(code, out.decode("utf-8", "replace"), err, server, client.where)
        return ServerCheck(server=server.name, reachable=ok, latency_ms=latency,
                           host_key_known=known, message=message)

