"""Slurm through the whole stack (issue 12): the shell in-process on a real SQLite
database and a real one-node cluster: `server add --kind slurm`, `server ping`, a run
through srun with its job id in `runs show`, and `run --detach`: queued (a held job),
running, then final, brought up to date by another shell (`runs show`, `runs wait`)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mer.config import Settings
from mer.domain import RunRecord, RunResult, RunStatus
from mer.services import detached
from mer.services import runs as run_svc
from tests.faults.shell_harness import InProcessShell
from tests.shell.harness import ShellOnFakes

# Waits until the file `go` appears in its workdir (when told to), then answers.
GATED = """import json, os, sys, time
r = json.load(sys.stdin)
while r["input"].get("wait") and not os.path.exists("go"):
    time.sleep(0.05)
print("working", file=sys.stderr)
print(json.dumps({"twice": r["input"]["x"] * 2}))
sys.exit(r["input"].get("exit", 0))
"""


@pytest.fixture
def db(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'mer.db'}",
                    data_dir=tmp_path / "data", allow_edit=True)


@pytest.fixture
def shell(db: Settings) -> Iterator[InProcessShell]:
    sh = InProcessShell(db)
    yield sh
    sh.close()


def last_json(out: str) -> dict:
    return json.loads(out.splitlines()[-1])


def until(shell: InProcessShell, run_id: str, status: str) -> dict:
    """`runs show` in ``shell`` until the run says ``status`` (a state, not a time, is
    what is waited for; pytest's timeout bounds it)."""
    while True:
        shown = last_json(shell(f"runs show {run_id} --json").out)
        if shown["status"] == status:
            return shown
        time.sleep(0.1)


def test_a_slurm_server_runs_models_and_detached_runs(slurm_cluster, shell, db, tmp_path: Path) -> None:
    model = tmp_path / "gated.py"
    model.write_text(GATED)
    part = slurm_cluster.partition
    added = shell(f"server add hpc --kind slurm --partition {part}")
    assert added.exit_code == 0, added.err
    assert shell(f'server add held --kind slurm --partition {part} --slurm-args=--hold').exit_code == 0
    assert last_json(shell("server show held --json").out)["slurm_args"] == "--hold"
    ping = shell("server ping hpc")
    assert ping.exit_code == 0 and f"partition {part} (default) up" in ping.out
    assert shell(f"model add gated --server hpc --workdir {tmp_path} --command "
                 f"'{sys.executable} {model}'").exit_code == 0
    shell(f"model add chat --server hpc --mode worker --command '{sys.executable} {model}'")
    assert shell("run chat --detach").err == "error: --detach runs oneshot models; 'chat@1' is a worker\n"

    # a run through srun: its output, verdict and job id
    ran = shell("run gated --data '{\"x\": 21}' --json")
    assert ran.exit_code == 0, ran.err
    record = last_json(ran.out)
    assert record["status"] == "succeeded" and record["result"] == {"twice": 42}
    assert record["job_id"].isdigit()
    assert f"job_id:           {record['job_id']}" in shell(f"runs show {record['id'][:8]}").out

    # what keeps a run from starting: one line, and the run recorded failed
    shell("server add nowhere --kind slurm --partition nope")
    refused = shell("run gated --server nowhere")
    assert (refused.exit_code, refused.err) == (1, "error: cannot start gated@1 on nowhere: srun: "
                                                "Unable to allocate resources: Invalid partition "
                                                "name specified\n")
    assert json.loads(shell("runs --model gated --json").out)[0]["status"] == "failed"

    # detached: held by Slurm (queued), released (running), then done, seen from a new shell
    sub = shell("run gated --server held --detach --json --data '{\"x\": 5, \"wait\": true}'")
    assert sub.exit_code == 0, sub.err
    queued = last_json(sub.out)
    assert queued["status"] == "queued" and queued["job_id"].isdigit()
    run_id = queued["id"][:8]
    shown = last_json(shell(f"runs show {run_id} --json").out)
    assert shown["status"] == "queued"
    assert shown["snapshot"]["request"]["input"] == {"x": 5, "wait": True}  # reproducible too
    subprocess.run(["scontrol", "release", queued["job_id"]], check=True, env=slurm_cluster.env())
    other = InProcessShell(db)
    try:
        until(other, run_id, "running")
        (tmp_path / "go").touch()
        waited = other(f"runs wait {run_id} --json --timeout 120")
        assert waited.exit_code == 0, waited.err
        done = last_json(waited.out)
        assert done["status"] == "succeeded" and done["result"] == {"twice": 10}
        assert done["job_id"] == queued["job_id"] and done["exit_code"] == 0
        assert "working" in last_json(other(f"runs show {run_id} --json").out)["stderr"]
    finally:
        other.close()
    # the first shell reads the same ending; the job's directory is gone
    assert last_json(shell(f"runs show {run_id} --json").out)["status"] == "succeeded"
    assert not (db.resolved_data_dir / "jobs" / queued["id"]).exists()


def test_detach_and_slurm_options_are_for_slurm_servers() -> None:
    sh = ShellOnFakes(allow_edit=True).seed()
    try:
        refused = sh("run lin --detach")
        assert (refused.exit_code, refused.err) == (
            2, "error: --detach needs a server of kind slurm; 'local' is of kind local\n")
        assert sh("server add gpu --kind local --partition p").err == (
            "error: --partition is for servers of kind slurm\n")
        sh.ctx.executors.kinds = lambda: ["local", "slurm"]  # type: ignore[method-assign]
        assert sh("server add hpc --kind slurm --slurm-args 'x --mem=1G'").err == (
            "error: slurm_args: 'x' is not an option; give each one as --name=value (they go "
            "to srun and sbatch)\n")
        assert sh("server add hpc --kind slurm --partition=-p").err == (
            "error: partition '-p' must be non-empty, without spaces, not starting with '-'\n")
        assert sh("server add hpc --kind slurm --slurm-args=--mem=1G").exit_code == 0
        assert sh("server set hpc slurm-args -- --mem=8G").exit_code == 0
        assert last_json(sh("server show hpc --json").out)["slurm_args"] == "--mem=8G"
    finally:
        sh.close()


def test_runs_wait_fails_unless_the_run_succeeded_and_gives_up_at_its_timeout() -> None:
    sh = ShellOnFakes().seed()
    try:
        sh.executor.result = RunResult(status=RunStatus.FAILED, exit_code=3, error="exit status 3")
        run_id = last_json(sh("run lin --json").out)["id"][:8]
        waited = sh(f"runs wait {run_id}")
        assert waited.exit_code == 1 and "lin@1 failed (exit 3) in" in waited.out
        still = RunRecord(model="lin", version="1", server="local", os_user="ann")
        sh.store.runs[still.id] = still  # running, and nothing will end it
        gave_up = sh(f"runs wait {str(still.id)[:8]} --timeout 0.3")
        assert (gave_up.exit_code, gave_up.err) == (1, (
            f"error: run {str(still.id)[:8]} is still running after 0.3 s; `runs wait "
            f"{str(still.id)[:8]}` waits again\n"))
        assert sh("runs wait 0000ffff").err == "error: run '0000ffff' not found; see `runs`\n"

        async def stop_waiting() -> RunStatus:  # Ctrl-C stops the waiting, not the run
            waiting = asyncio.ensure_future(detached.wait_run(sh.ctx, str(still.id)))
            await asyncio.sleep(0.05)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            return (await run_svc.get_run(sh.ctx, str(still.id))).status

        assert sh.bridge.call(stop_waiting()) is RunStatus.RUNNING
    finally:
        sh.close()
