"""`kill -9` of mer (or a power cut) leaves no run `running` forever and no model
process behind (issue 9): the next mer on this host finishes the row `lost` and kills
the model's process group, locally and over the real sshd. A live mer's row is never
touched."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mer.domain import Server
from tests.faults.conftest import seed_servers
from tests.processes import owned_by
from tests.shell.conftest import BIN, run_main


def _wait_for(what: str, check: Callable[[], object], timeout: float = 30) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _row(db: Path) -> tuple[str, str | None, int | None]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT status, error, process_group FROM access_log").fetchone()


@pytest.fixture(params=["local", "ssh"])
def sleeper_server(request: pytest.FixtureRequest) -> Server:
    if request.param == "local":
        return Server(name="box")
    sshd = request.getfixturevalue("sshd_server")
    return Server(name="box", kind="ssh", host=sshd.server.host, port=sshd.server.port,
                  user=sshd.server.user, identity_file=sshd.server.identity_file,
                  known_hosts=sshd.server.known_hosts)


def _mer(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([str(BIN / "mer"), *args], env=env, text=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.fixture
def sleeper_env(sleeper_server: Server, tmp_path: Path) -> dict[str, str]:
    import asyncio

    db = tmp_path / "mer.db"
    asyncio.run(seed_servers(f"sqlite+aiosqlite:///{db}", sleeper_server,
                             sleeper=(sleeper_server.name, ["sleep", "300"])))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MER_")}
    env.update(MER_DATABASE_URL=f"sqlite+aiosqlite:///{db}", MER_DATA_DIR=str(tmp_path / "data"),
               MER_ENV_FILE=str(tmp_path / "none.env"))
    return env


def test_a_killed_mer_leaves_no_running_row_and_no_model_process(sleeper_env: dict[str, str],
                                                                   tmp_path: Path) -> None:
    mer = _mer(sleeper_env, "-c", "run sleeper")
    try:
        models = _wait_for("the model to start", lambda: owned_by(mer.pid))
        _wait_for("the row to record the model's process group", lambda: _row(tmp_path / "mer.db")[2])
    finally:
        mer.send_signal(signal.SIGKILL)
        mer.wait(10)
    assert _row(tmp_path / "mer.db")[0] == "running"
    assert all(os.path.exists(f"/proc/{pid}") for pid in models)  # orphaned, alive

    done = run_main(sleeper_env, "-c", "runs --status running")  # the next mer, in-process
    assert done.returncode == 0, done.stderr
    status, error, _ = _row(tmp_path / "mer.db")
    assert status == "lost" and f"pid {mer.pid}" in error and "was killed" in error, error
    _wait_for("the model processes to be gone", lambda: not owned_by(mer.pid), timeout=15)


def test_a_live_mer_keeps_its_running_row(sleeper_env: dict[str, str], tmp_path: Path) -> None:
    mer = _mer(sleeper_env, "-c", "run sleeper")
    try:
        _wait_for("the model to start", lambda: owned_by(mer.pid))
        _wait_for("the row to record the model's process group", lambda: _row(tmp_path / "mer.db")[2])
        done = run_main(sleeper_env, "-c", "runs --status running")  # another mer, in-process
        assert done.returncode == 0, done.stderr
        assert _row(tmp_path / "mer.db")[0] == "running" and owned_by(mer.pid)
    finally:
        mer.send_signal(signal.SIGTERM)  # cancels the run: recorded, model killed
        mer.wait(30)
    assert _row(tmp_path / "mer.db")[0] == "cancelled"
    _wait_for("the model processes to be gone", lambda: not owned_by(mer.pid), timeout=15)
