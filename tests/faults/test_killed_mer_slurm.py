"""`kill -9` of a mer whose model runs through srun leaves no job behind: the next mer
finishes the row `lost` and TERMs the srun client's process group, which cancels its
job (tests/faults/test_killed_mer.py for local and ssh models)."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import uuid
from pathlib import Path

from mer.domain import Server
from tests.faults.conftest import seed_servers
from tests.faults.test_killed_mer import _mer, _row, _wait_for
from tests.processes import owned_by
from tests.shell.conftest import run_main


def test_a_killed_mer_leaves_no_slurm_job(slurm_cluster, tmp_path: Path) -> None:
    db = tmp_path / "mer.db"
    asyncio.run(seed_servers(f"sqlite+aiosqlite:///{db}", Server(name="hpc", kind="slurm"),
                             sleeper=("hpc", ["sleep", "300"])))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MER_")}
    env.update(MER_DATABASE_URL=f"sqlite+aiosqlite:///{db}", MER_DATA_DIR=str(tmp_path / "data"),
               MER_ENV_FILE=str(tmp_path / "none.env"))
    mer = _mer(env, "-c", "run sleeper")
    try:
        # the model runs under slurmstepd, with mer's mark (srun exports its environment)
        _wait_for("the model to start", lambda: [p for p in owned_by(mer.pid)
                                                 if b"sleep" in Path(f"/proc/{p}/cmdline").read_bytes()])
        _wait_for("the row to record srun's process group", lambda: _row(db)[2])
    finally:
        mer.send_signal(signal.SIGKILL)
        mer.wait(10)
    with sqlite3.connect(db) as conn:
        name = f"mer-{uuid.UUID(str(conn.execute('SELECT id FROM access_log').fetchone()[0]))}"
    assert slurm_cluster.jobs(name) != [] and _row(db)[0] == "running"

    done = run_main(env, "-c", "runs --status running")  # the next mer, in-process
    assert done.returncode == 0, done.stderr
    status, error, _ = _row(db)
    assert status == "lost" and "was killed" in error, error
    _wait_for("the job and its processes to be gone",
              lambda: not owned_by(mer.pid) and slurm_cluster.jobs(name) == [], timeout=30)
