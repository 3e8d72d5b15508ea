"""start_mer.sh / stop_mer.sh round trips on the embedded SQLite and on the local
PostgreSQL cluster, driving the real scripts and the real `mer` process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import skip_or_fail

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).parent.parent


def _venv(tmp_path: Path) -> Path:
    """A venv holding this one's `mer`, `mer-migrate` and `python` (start_mer.sh reads
    .env with it), marked installed after pyproject.toml changed last: start_mer.sh must
    not pip-install mer into the venv that runs the tests (a reinstall under a test
    running beside it breaks it)."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    for name in ("mer", "mer-migrate", "python"):
        (venv / "bin" / name).symlink_to(VENV / "bin" / name)
    # python finds its packages through pyvenv.cfg beside it and lib/ below
    (venv / "pyvenv.cfg").write_text((VENV / "pyvenv.cfg").read_text())
    (venv / "lib").symlink_to(VENV / "lib")
    (venv / ".mer-installed").touch()
    return venv


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MER_")}
    env.update(
        MER_DATA_DIR=str(tmp_path / "data"),
        MER_RUN_DIR=str(tmp_path / "run"),
        MER_VENV=str(_venv(tmp_path)),
        MER_CATALOG=str(ROOT / "examples" / "catalog.toml"),
        MER_ENV_FILE=str(tmp_path / "no.env"),
    )
    env.update(extra)
    return env


def _wait_for(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def _round_trip(tmp_path: Path, env: dict[str, str], *start_args: str) -> None:
    # A scripted run: migrate, load the catalog, run one command, exit 0.
    done = subprocess.run(
        [str(ROOT / "start_mer.sh"), *start_args, "--json", "-c", "models"],
        env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    assert '"echo"' in done.stdout
    assert "Traceback" not in done.stderr

    # An open shell (stdin kept open, so it waits for commands) that stop_mer.sh ends.
    shell = subprocess.Popen(
        [str(ROOT / "start_mer.sh"), *start_args],
        env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    pid_file = tmp_path / "run" / "shells" / f"{shell.pid}.pid"
    try:
        assert _wait_for(pid_file.exists), "start_mer.sh wrote no pid file"
        # The pid is the shell's own: start_mer.sh replaced itself with `mer`.
        assert _wait_for(lambda: "mer" in Path(f"/proc/{shell.pid}/cmdline").read_text())
        time.sleep(0.5)
        stop = subprocess.run(
            [str(ROOT / "stop_mer.sh")], env=env, capture_output=True, text=True, timeout=60
        )
        assert stop.returncode == 0, stop.stderr
        assert "stopped 1 shell(s)" in stop.stderr
        assert shell.wait(timeout=30) is not None
        assert not pid_file.exists()
    finally:
        if shell.poll() is None:
            shell.kill()
            shell.wait()

    # A second stop finds nothing to stop and touches nothing else.
    again = subprocess.run(
        [str(ROOT / "stop_mer.sh")], env=env, capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 0 and "stopped 0 shell(s)" in again.stderr


@pytest.mark.slow
def test_round_trip_on_embedded_sqlite(tmp_path: Path) -> None:
    env = _env(tmp_path)
    _round_trip(tmp_path, env)
    assert (tmp_path / "data" / "mer.db").exists()


@pytest.mark.slow
@pytest.mark.postgres
def test_round_trip_on_local_postgres(tmp_path: Path) -> None:
    ready = subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"], check=False)
    if ready.returncode != 0:
        skip_or_fail("PostgreSQL is not running at 127.0.0.1:5432")
    db = f"mer_start_{uuid.uuid4().hex[:8]}"
    env = _env(tmp_path, MER_PG_DB=db, MER_PG_USER="postgres")
    try:
        _round_trip(tmp_path, env, "--postgres")
        # start_mer.sh did not start this (already running) cluster, so stop left it up.
        assert not (tmp_path / "run" / "db.started").exists()
        assert subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1"]).returncode == 0
        tables = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-tAc",
             "SELECT count(*) FROM models"],
            capture_output=True, text=True, check=True,
        )
        assert int(tables.stdout.strip()) >= 1
    finally:
        subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", db],
                       check=False)
