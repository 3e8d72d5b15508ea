"""One run through ``srun``: its command line, and the client process that reports the
job's id and can cancel the job.

The task srun starts is a tiny ``sh`` that changes to the model's workdir, checks that
the program exists there, prints ``@mer-job <SLURM_JOB_ID>`` as its first stdout line
and ``exec``s the model (srun passes argv through untouched, so nothing is re-quoted on
the node). ``SrunProcess`` takes that line off the stream: it is how mer learns the job
id (srun prints nothing of its own with ``--quiet``) and that the model really started;
a srun that ends without it could not start the model, and its stderr says why.

Killing: TERM to srun makes it cancel its job, but a srun that is KILLed (or a srun that
had not asked for its allocation yet) leaves a job behind. So a kill is ``scancel`` by
the run's job name (``mer-<run id>``), then the srun client's process group, then
``scancel`` again until squeue lists nothing of that name (KILL after the grace).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import shlex
from collections.abc import Awaitable, Callable
from uuid import UUID

from mer.domain import RunRequest, Server
from mer.execution.hosted import ClientProcess
from mer.execution.process import Process

__all__ = ["JOB_LINE", "SrunProcess", "job_name", "slurm_options", "srun_argv"]

log = logging.getLogger(__name__)

JOB_LINE = b"@mer-job "
# $0 is a name for the shell's messages, $1 the workdir, the rest the model's argv.
_TASK = ('cd "$1" 2>/dev/null || { echo "mer: workdir $1 is not a directory on $(hostname)" >&2; '
         'exit 126; }; shift; command -v "$1" >/dev/null 2>&1 || { echo "mer: $1 not found on '
         '$(hostname)" >&2; exit 127; }; echo "@mer-job $SLURM_JOB_ID"; exec "$@"')
GONE_TIMEOUT = 30.0  # seconds a cancelled job may take to leave squeue


def job_name(run_id: UUID) -> str:
    return f"mer-{run_id}"


def time_limit(seconds: float | None) -> list[str]:
    """``--time`` in whole minutes (what Slurm enforces), rounded up."""
    if seconds is None:
        return []
    return [f"--time={max(1, math.ceil(seconds / 60))}"]


def slurm_options(server: Server, request: RunRequest) -> list[str]:
    """The options srun and sbatch share: job name, partition, account, time limit and
    the server's own extra arguments."""
    opts = [f"--job-name={job_name(request.run_id)}"]
    if server.partition:
        opts.append(f"--partition={server.partition}")
    if server.account:
        opts.append(f"--account={server.account}")
    opts += time_limit(request.timeout)
    return opts + shlex.split(server.slurm_args or "")


def _workdir(request: RunRequest) -> str:
    workdir = request.workdir or "."
    return "./" + workdir if workdir.startswith("-") else workdir  # not an option of cd


def srun_argv(server: Server, request: RunRequest, command: list[str]) -> list[str]:
    return ["srun", "--quiet", "--ntasks=1", *slurm_options(server, request), "sh", "-c", _TASK,
            "mer-slurm", _workdir(request), *command]


# Runs a short sh script where the Slurm client commands are: (exit status, stdout, stderr).
Shell = Callable[[str], Awaitable[tuple[int, bytes, str]]]


def _gone_script(name: str, grace: float) -> str:
    """scancel the job named ``name`` until squeue lists it no more; KILL after ``grace``.
    Exit 1: still there after GONE_TIMEOUT."""
    polls, kill_at = int(GONE_TIMEOUT / 0.1), max(1, int(grace / 0.1))
    return (f"n={shlex.quote(name)}; i=0; scancel --name=\"$n\" 2>/dev/null\n"
            f"while [ -n \"$(squeue -h -n \"$n\" -o %i 2>/dev/null)\" ]; do\n"
            f"  i=$((i+1)); [ $i -gt {polls} ] && exit 1\n"
            f"  [ $i -eq {kill_at} ] && scancel --signal=KILL --name=\"$n\" 2>/dev/null\n"
            f"  sleep 0.1 2>/dev/null || sleep 1\n"
            f"done\nexit 0\n")


class SrunProcess(ClientProcess):
    """srun's client process (local, or on the login node over SSH), minus the job line."""

    def __init__(self, inner: Process, shell: Shell, name: str,
                 on_start: Callable[[], None] | None = None) -> None:
        super().__init__(inner)
        self.shell, self.name = shell, name
        self.on_start = on_start
        self.job_id: str | None = None
        self.started = False  # the job line came: the model runs
        self._seen = False  # the first line (or the end of stdout) has been read
        self._head = bytearray()
        self._rest = b""

    async def read_stdout(self) -> bytes:
        if self._rest:
            rest, self._rest = self._rest, b""
            return rest
        if self._seen:
            return await self.inner.read_stdout()
        while not self._seen:
            chunk = await self.inner.read_stdout()
            if not chunk:  # ended without a line: whatever came is output
                self._seen = True
                head, self._head = bytes(self._head), bytearray()
                return head
            self._head += chunk
            if b"\n" in self._head:
                self._take_line()
        return await self.read_stdout()

    def _take_line(self) -> None:
        raw, self._head = bytes(self._head), bytearray()
        line, _, rest = raw.partition(b"\n")
        self._seen = True
        if line.startswith(JOB_LINE) and line[len(JOB_LINE):].strip().isdigit():
            self.job_id = line[len(JOB_LINE):].strip().decode()
            self.started = True
            if self.on_start is not None:
                self.on_start()
        else:
            rest = raw  # not the task's line: the model's own output
        self._rest = rest

    async def kill(self, grace: float) -> None:
        """Cancel the job and end the srun client; returns once squeue lists no job of
        this run (or after GONE_TIMEOUT, logged). A srun that ended by itself (a worker
        told to exit) leaves a job that is still completing: waited for too."""
        if self.inner.alive():
            with contextlib.suppress(Exception):
                await self.shell(f"scancel --name={shlex.quote(self.name)} 2>/dev/null")
        with contextlib.suppress(Exception):
            await self.inner.kill(grace)
        try:
            code, _, _ = await asyncio.wait_for(self.shell(_gone_script(self.name, grace)),
                                                GONE_TIMEOUT + 10)
        except Exception:  # noqa: BLE001 - the run ends anyway; say so in the log
            code = -1
        if code != 0:
            log.warning("Slurm job %s (%s) may still be listed by squeue", self.name, self.job_id)
