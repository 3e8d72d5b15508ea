"""Detached runs (``run --detach``): the scripts that submit a run with ``sbatch`` and read
back how it went. Each is one short POSIX sh script, run where the Slurm client commands
are (this machine, or the login node over SSH): one round trip each.

A detached run lives in its job directory (``MER_DATA_DIR/jobs/<run id>`` here,
``~/.mer/jobs/<run id>`` on a login node): ``request.json`` (the model's stdin),
``job.sh`` (the batch script), ``stdout`` and ``stderr`` (the model's), ``slurm.out``
(Slurm's own messages: a cancel, a time limit) and, once the model has ended, ``exit``
(its exit status; written to a temporary name and renamed, so it is whole or absent).

How a run stands is read from, in order: the exit file (the model ended), ``squeue -t
all`` (pending, running, or how it ended while the controller remembers the job:
MinJobAge, 5 minutes by default), ``sacct`` (where accounting runs); none of them
knowing the job means it is lost.
"""

from __future__ import annotations

import shlex
from uuid import UUID

from mer.domain import RunRequest, RunResult, RunStatus, Server, utcnow
from mer.errors import ExecutionError
from mer.execution.output import OutputKeeper, parse_result
from mer.execution.slurm_srun import slurm_options

__all__ = ["collect_script", "forget_script", "job_script", "parse_collected", "parse_state",
           "poll_script", "submit_script"]

_QUEUED = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"}
_RUNNING = {"RUNNING", "COMPLETING", "SUSPENDED", "STAGE_OUT", "SIGNALING", "RESIZING",
            "STOPPED"}
_ENDED = {"CANCELLED": RunStatus.CANCELLED, "TIMEOUT": RunStatus.TIMEOUT,
          "DEADLINE": RunStatus.TIMEOUT, "NODE_FAIL": RunStatus.LOST, "BOOT_FAIL": RunStatus.LOST,
          "PREEMPTED": RunStatus.LOST, "REVOKED": RunStatus.LOST}
_FILES = ("stdout", "stderr", "slurm.out")


def job_dir(root: str | None, run_id: UUID) -> str:
    """The shell word (quoted as needed) naming a run's job directory: under ``root``
    here, under the login user's home when ``root`` is None."""
    if root is None:
        return f'"$HOME"/.mer/jobs/{run_id}'
    return shlex.quote(f"{root}/{run_id}")


def job_script(request: RunRequest) -> str:
    """The batch script: the model with request.json as its stdin, its streams to files
    and its exit status to ``exit``. sbatch starts it in the job directory."""
    workdir = request.workdir or "."
    if workdir.startswith("-"):
        workdir = "./" + workdir
    env = " ".join(shlex.quote(f"{k}={v}") for k, v in request.env.items())
    argv = " ".join(shlex.quote(a) for a in request.command)
    return (
        "#!/bin/sh\n"
        'd=$PWD\n'
        f"export MER_RUN_ID={shlex.quote(str(request.run_id))}\n"
        f'if cd {shlex.quote(workdir)} 2>/dev/null; then\n'
        f'  {"env -- " + env + " " if env else ""}{argv} < "$d/request.json" '
        '> "$d/stdout" 2> "$d/stderr"\n'
        "  code=$?\n"
        "else\n"
        f'  echo "mer: workdir {shlex.quote(workdir)} is not a directory on $(hostname)" > "$d/stderr"\n'
        "  code=126\n"
        "fi\n"
        'echo "$code" > "$d/exit.tmp" && mv "$d/exit.tmp" "$d/exit"\n'
        'exit "$code"\n'
    )


def submit_script(root: str | None, request: RunRequest, server: Server) -> str:
    """Make the job directory, put request.json (this script's stdin) and job.sh in it,
    and sbatch it; prints the job id. Exit 127: no sbatch there."""
    d = job_dir(root, request.run_id)
    opts = " ".join(shlex.quote(o) for o in slurm_options(server, request))
    return (
        "command -v sbatch >/dev/null 2>&1 || exit 127\n"
        f"d={d}\n"
        "umask 077\n"
        'mkdir -p "$d" && cat > "$d/request.json" || exit 1\n'
        f'printf "%s" {shlex.quote(job_script(request))} > "$d/job.sh" || exit 1\n'
        # The job outlives this mer: it must not carry its owner mark (a reaper of this
        # mer kills the processes that hold it).
        "unset MER_OWNER\n"
        f'exec sbatch --parsable {opts} --chdir="$d" --output="$d/slurm.out" "$d/job.sh"\n'
    )


def parse_job_id(code: int, out: str, err: str, where: str) -> str:
    """sbatch --parsable prints ``ID`` or ``ID;CLUSTER``."""
    if code == 127:
        raise ExecutionError(f"the Slurm client (sbatch) is not installed on {where}")
    first = out.strip().split(";", 1)[0]
    if code != 0 or not first.isdigit():
        lines = err.strip().splitlines() or [f"exit status {code}"]
        raise ExecutionError(f"sbatch on {where} failed: {lines[-1]}")
    return first


def poll_script(root: str | None, run_id: UUID, job_id: str) -> str:
    """Prints ``exit N`` once the model has ended, else ``state S`` (S empty when
    neither squeue nor sacct know the job)."""
    if not job_id.isdigit():
        raise ExecutionError(f"'{job_id}' is not a Slurm job id")
    return (
        f"d={job_dir(root, run_id)}; j={job_id}\n"
        'ended() { [ -f "$d/exit" ] && { echo "exit $(cat "$d/exit")"; exit 0; }; }\n'
        "ended\n"
        's=$(squeue -h -t all -j "$j" -o %T 2>/dev/null)\n'
        "ended\n"  # it may have ended meanwhile
        '[ -n "$s" ] || s=$(sacct -n -X -P -j "$j" -o State 2>/dev/null | head -n 1)\n'
        'echo "state $s"\n'
    )


def parse_state(out: str) -> tuple[RunStatus, int | None, str | None]:
    """(status, exit code, error) from what ``poll_script`` printed."""
    word, _, value = out.strip().partition(" ")
    value = value.strip()
    if word == "exit":
        code = int(value) if value.lstrip("-").isdigit() else None
        if code == 0:
            return RunStatus.SUCCEEDED, 0, None
        return RunStatus.FAILED, code, f"exit status {code}" if code is not None else "no exit status"
    state = value.split()[0] if value else ""  # sacct: "CANCELLED by 0"
    if state in _QUEUED:
        return RunStatus.QUEUED, None, None
    if state in _RUNNING:
        return RunStatus.RUNNING, None, None
    if not state:
        return RunStatus.LOST, None, "Slurm no longer knows the job, and it left no exit status"
    ended = _ENDED.get(state, RunStatus.FAILED)
    return ended, None, f"the Slurm job ended {state}"


def collect_script(root: str | None, run_id: UUID, cap: int) -> str:
    """For each of stdout, stderr and slurm.out: its size on one line, then the whole
    file when it fits ``cap``, else its first and last ``cap/2`` bytes."""
    half = max(cap // 2, 1)
    return (
        f"d={job_dir(root, run_id)}\n"
        f"for f in {' '.join(_FILES)}; do\n"
        '  n=0; [ -f "$d/$f" ] && n=$(wc -c < "$d/$f")\n'
        "  echo $n\n"
        f'  if [ "$n" -le {2 * half} ]; then cat "$d/$f" 2>/dev/null\n'
        f'  else head -c {half} "$d/$f"; tail -c {half} "$d/$f"; fi\n'
        "done\n"
    )


def parse_collected(data: bytes, cap: int) -> list[OutputKeeper]:
    """The three files' kept output, as ``collect_script`` printed them."""
    half = max(cap // 2, 1)
    kept = []
    for _ in _FILES:
        line, _, data = data.partition(b"\n")
        size = int(line.strip() or 0)
        take = size if size <= 2 * half else 2 * half
        body, data = data[:take], data[take:]
        keep = OutputKeeper(cap)
        keep.add(body)
        if size > take:  # head and tail of a larger file: count what was not kept
            keep.head, keep.tail = bytearray(body[:half]), bytearray(body[half:])
            keep.total = size
        kept.append(keep)
    return kept


def forget_script(root: str | None, run_id: UUID) -> str:
    return f"rm -rf -- {job_dir(root, run_id)}"


def _last_line(keep: OutputKeeper) -> str:
    """The last line kept: whole when the file was kept whole (a line may then span the
    keeper's head and tail)."""
    if keep.total > len(keep.head) + len(keep.tail):
        return keep.last_line()
    data = bytes(keep.head + keep.tail).rstrip(b"\r\n")
    return data.rsplit(b"\n", 1)[-1].decode("utf-8", "replace").strip()


def final_result(status: RunStatus, code: int | None, error: str | None,
                 kept: list[OutputKeeper], job_id: str) -> RunResult:
    """The RunResult of a detached run that ended; Slurm's own last message (a cancel,
    a time limit) names why when the model left no exit status."""
    out, err, slurm = kept
    if status is not RunStatus.SUCCEEDED and code is None and slurm.total:
        error = f"{error}: {_last_line(slurm)}"
    return RunResult(status=status, exit_code=code, finished_at=utcnow(),
                     bytes_out=out.total + err.total, stdout=out.text(), stderr=err.text(),
                     result=parse_result(_last_line(out)), error=error, job_id=job_id)
