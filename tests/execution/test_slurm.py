"""The Slurm executor against a real one-node cluster (tests/fixtures_slurm.py): a run is
a process started through srun (here, and on a login node over SSH), its job id kept; a
timeout or a cancel ends with scancel and leaves no job and no process; a worker is one
long-lived srun step; a detached run goes through sbatch."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mer.domain import RunRequest, RunStatus, Server
from mer.errors import ExecutionError
from mer.execution.interface import Sinks
from mer.execution.slurm import SlurmExecutor

PY = sys.executable
HPC = Server(name="hpc", kind="slurm")
# Reads its request, says so on both streams, answers with the input doubled.
MODEL = ("import sys, json; r = json.load(sys.stdin); print('loaded', flush=True); "
         "print('note', file=sys.stderr); print(json.dumps({'twice': r['input'] * 2}))")
WORKER = ("import sys, json\nprint(json.dumps({'ready': True}), flush=True)\n"
          "for line in sys.stdin:\n    r = json.loads(line)\n    if r.get('exit'): break\n"
          "    print(json.dumps({'id': r['id'], 'result': r['input'] + 1}), flush=True)\n")


def request(command: list[str], **kw) -> RunRequest:  # noqa: ANN003
    return RunRequest(model="m", version="1", command=command,
                      payload={"model": "m", "input": kw.pop("input", 21)}, **kw)


def sleeper(marker: str) -> list[str]:
    """A model that says it started, then sleeps; ``marker`` names its process."""
    return [PY, "-c", "import time; print('started', flush=True); time.sleep(600)", marker]


@pytest.fixture
async def ex(tmp_path: Path) -> AsyncIterator[SlurmExecutor]:
    executor = SlurmExecutor(output_cap=64 * 1024, grace=0.5, data_dir=str(tmp_path))
    yield executor
    await executor.close()


async def test_a_run_streams_its_output_and_keeps_its_job_id(slurm_cluster, ex) -> None:
    out: list[bytes] = []
    err: list[bytes] = []
    result = await ex.run(request([PY, "-c", MODEL]), HPC, Sinks(stdout=out.append, stderr=err.append))
    assert result.status is RunStatus.SUCCEEDED, result.stderr
    assert result.result == {"twice": 42}
    assert b"".join(out) == b'loaded\n{"twice": 42}\n'  # the job line is not the model's
    assert b"note" in b"".join(err)
    assert result.job_id is not None and result.job_id.isdigit()


async def test_the_exit_status_is_the_verdict(slurm_cluster, ex, tmp_path: Path) -> None:
    (tmp_path / "here.txt").write_text("x")
    result = await ex.run(request(["sh", "-c", "ls; exit 3"], workdir=str(tmp_path)), HPC)
    assert result.status is RunStatus.FAILED and result.exit_code == 3
    assert "here.txt" in result.stdout  # it ran in the model's workdir
    assert result.job_id is not None


async def test_a_timeout_cancels_the_job_and_leaves_nothing(slurm_cluster, ex) -> None:
    marker = f"mer-timeout-{uuid.uuid4()}"
    req = request(sleeper(marker), timeout=1.0)
    result = await ex.run(req, HPC)
    assert result.status is RunStatus.TIMEOUT
    assert "started" in result.stdout  # the model did run
    assert slurm_cluster.jobs(f"mer-{req.run_id}") == []
    assert slurm_cluster.processes(marker) == []


async def test_a_cancelled_run_cancels_its_job_and_leaves_nothing(slurm_cluster, ex) -> None:
    marker = f"mer-cancel-{uuid.uuid4()}"
    req = request(sleeper(marker), timeout=90)
    started = asyncio.Event()
    hpc = Server(name="hpc", kind="slurm", slurm_args="--comment=from-slurm-args")
    task = asyncio.ensure_future(ex.run(req, hpc, Sinks(stdout=lambda _: started.set())))
    await asyncio.wait_for(started.wait(), 60)
    job = subprocess.run(["squeue", "-h", "-n", f"mer-{req.run_id}", "-o", "%l %k"],
                         capture_output=True, text=True, check=True).stdout.strip()
    # the run's timeout is the job's --time too, in whole minutes; the server's own options
    assert job == "2:00 from-slurm-args"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert slurm_cluster.jobs(f"mer-{req.run_id}") == []
    assert slurm_cluster.processes(marker) == []


async def test_a_worker_is_one_long_lived_srun_step(slurm_cluster, ex) -> None:
    req = request([PY, "-c", WORKER], mode="worker", input=1)
    first = await ex.run(req, HPC)
    second = await ex.run(request([PY, "-c", WORKER], mode="worker", input=41), HPC)
    assert (first.result, second.result) == (2, 42)
    assert first.job_id is not None and first.job_id == second.job_id  # one job serves both
    assert await ex.stop_worker(HPC, "m") == 1
    assert slurm_cluster.jobs(f"mer-{req.run_id}") == []


async def test_what_keeps_a_run_from_starting_is_one_line(slurm_cluster, ex) -> None:
    with pytest.raises(ExecutionError) as bad_partition:
        await ex.run(request(["true"]), Server(name="h", kind="slurm", partition="nope"))
    assert str(bad_partition.value) == ("cannot start m@1 on h: srun: Unable to allocate resources: "
                                        "Invalid partition name specified")
    with pytest.raises(ExecutionError, match=r"^cannot start m@1 on hpc: mer: no-such-model not found on "):
        await ex.run(request(["no-such-model"]), HPC)
    with pytest.raises(ExecutionError, match=r"mer: workdir /no/such/dir is not a directory on "):
        await ex.run(request(["true"], workdir="/no/such/dir"), HPC)


async def test_no_slurm_client_here_is_one_line(ex, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ExecutionError) as missing:
        await ex.run(request(["true"]), HPC)
    assert str(missing.value) == ("cannot start m@1: the Slurm client (srun) is not installed on "
                                  "this machine; see `server ping hpc`")
    check = await ex.check(HPC)
    assert not check.reachable and check.message == ("the Slurm client (sinfo) is not installed on "
                                                     "this machine")


async def test_ping_names_the_partition_or_what_is_wrong(slurm_cluster, ex) -> None:
    good = await ex.check(Server(name="hpc", kind="slurm", partition=slurm_cluster.partition))
    assert good.reachable and f"partition {slurm_cluster.partition} (default) up: 1 node(s)" in good.message
    bad = await ex.check(Server(name="hpc", kind="slurm", partition="nope"))
    assert not bad.reachable and bad.message == "no partition nope on this machine"


async def test_a_detached_run_is_submitted_then_polled_to_its_end(slurm_cluster, ex, tmp_path: Path,
                                                                  monkeypatch) -> None:
    # The job outlives this mer: it must not carry the mark its reaper kills by.
    monkeypatch.setenv("MER_OWNER", "1:mark")
    owner = "import os; print('owner', os.environ.get('MER_OWNER'), flush=True); "
    req = request([PY, "-c", owner + MODEL + "; sys.exit(4)"], timeout=120)
    job = await ex.submit(req, HPC)
    assert job.isdigit()
    job_dir = tmp_path / "jobs" / str(req.run_id)
    assert (job_dir / "request.json").exists()
    state = await ex.poll(HPC, req.run_id, job)
    while state.status in (RunStatus.QUEUED, RunStatus.RUNNING):
        await asyncio.sleep(0.2)
        state = await ex.poll(HPC, req.run_id, job)
    assert state.status is RunStatus.FAILED and state.exit_code == 4
    assert state.stdout == 'owner None\nloaded\n{"twice": 42}\n' and state.result == {"twice": 42}
    assert state.stderr == "note\n" and state.job_id == job
    await ex.forget(HPC, req.run_id)
    assert not job_dir.exists()


async def test_through_a_login_node_over_ssh(slurm_cluster, slurm_login, ex) -> None:
    # The login user's own python3 (the test sshd's user may not reach this checkout's).
    result = await ex.run(request(["python3", "-c", MODEL]), slurm_login)
    assert result.status is RunStatus.SUCCEEDED and result.result == {"twice": 42}
    assert result.stdout == 'loaded\n{"twice": 42}\n' and result.job_id is not None
    marker = f"mer-ssh-timeout-{uuid.uuid4()}"
    req = request(["python3", *sleeper(marker)[1:]], timeout=1.0)
    assert (await ex.run(req, slurm_login)).status is RunStatus.TIMEOUT
    assert slurm_cluster.jobs(f"mer-{req.run_id}") == []
    assert slurm_cluster.processes(marker) == []
    detached = request(["python3", "-c", MODEL])
    job = await ex.submit(detached, slurm_login)
    state = await ex.poll(slurm_login, detached.run_id, job)
    while state.status in (RunStatus.QUEUED, RunStatus.RUNNING):
        await asyncio.sleep(0.2)
        state = await ex.poll(slurm_login, detached.run_id, job)
    assert state.status is RunStatus.SUCCEEDED and state.result == {"twice": 42}
    await ex.forget(slurm_login, detached.run_id)
    check = await ex.check(slurm_login)
    assert check.reachable and check.host_key_known is True, check.message
