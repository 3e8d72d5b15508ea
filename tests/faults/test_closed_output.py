"""When the reader of mer's output goes away (`mer ... | head -n 1`), mer ends like a
program killed by SIGPIPE and says nothing: no `Exception ignored in`, no `Event loop is
closed`, no traceback from asyncio's teardown. Real `mer` processes, on SQLite and the
real PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.faults.conftest import seed

BIN = Path(sys.executable).parent
# Floods stdout (and a little stderr) until it is killed: after the reader went away,
# the pipes still hold output that nobody will read.
FLOOD = [sys.executable, "-c", "import os, itertools; os.write(2, b'starting\\n'); "
         "[os.write(1, (b'x' * 1023 + b'\\n') * 64) for _ in itertools.count()]"]
NOISE = ("Exception ignored", "Event loop is closed", "Traceback", "Task was destroyed")


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'mer.db'}"
    fresh: str = request.getfixturevalue("pg_fresh")
    return fresh


def _env(tmp_path: Path, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MER_")}
    env.update(MER_DATA_DIR=str(tmp_path / "data"), MER_ENV_FILE=os.devnull,
               MER_DATABASE_URL=url)
    return env


def _read_a_line_then_leave(argv: list[str], env: dict[str, str], errors: Path) -> int:
    with errors.open("wb") as err:
        proc = subprocess.Popen([str(BIN / "mer"), *argv], env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=err)
        assert proc.stdout is not None
        assert proc.stdout.readline()
        proc.stdout.close()  # the reader goes away while mer still writes
        return proc.wait(timeout=60)


async def test_a_reader_that_leaves_during_a_run_leaves_no_noise(url: str, tmp_path: Path) -> None:
    await seed(url, flood=FLOOD)
    errors = tmp_path / "stderr.txt"
    for _ in range(3):  # the teardown raced the garbage collector: try it more than once
        code = _read_a_line_then_leave(["-c", "run flood", "-c", "runs"], _env(tmp_path, url), errors)
        text = errors.read_text()
        assert code == 141, text
        assert not [n for n in NOISE if n in text], text


async def test_a_reader_that_leaves_between_commands_leaves_no_noise(url: str, tmp_path: Path) -> None:
    await seed(url, quick=[sys.executable, "-c", "print('hello')"])
    errors = tmp_path / "stderr.txt"
    code = _read_a_line_then_leave(["-c", "run quick", "-c", "runs", "-c", "models", "-c", "runs"],
                                   _env(tmp_path, url), errors)
    text = errors.read_text()
    assert code in (0, 141), text
    assert not [n for n in NOISE if n in text], text


async def test_a_run_that_times_out_leaves_no_noise_at_exit(url: str, tmp_path: Path) -> None:
    """The same unread pipes, with the reader still there: the timeout stopped the pumps."""
    await seed(url, flood=FLOOD)
    done = subprocess.run([str(BIN / "mer"), "-c", "run flood --timeout 0.5"], env=_env(tmp_path, url),
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True, timeout=60)
    assert done.returncode == 1
    assert "timed out after 0.5 s" in done.stderr
    assert not [n for n in NOISE if n in done.stderr], done.stderr
