"""When the reader of mer's output goes away (`mer ... | head -n 1`), mer ends like a
program killed by SIGPIPE and says nothing: no `Exception ignored in`, no `Event loop is
closed`, no traceback from asyncio's teardown. Real `mer` processes, on SQLite and the
real PostgreSQL, with oneshot and worker models."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mer.domain import ModelConfig, Server
from tests.fixtures_pg import migrate

BIN = Path(sys.executable).parent
# Floods stdout until it is killed: once the reader went away (or the run timed out),
# the pipes hold output that nobody will read.
_FLOOD = "[os.write(1, (b'x' * 1023 + b'\\n') * 64) for _ in itertools.count()]"
FLOOD = [sys.executable, "-c", f"import os, itertools; os.write(2, b'starting\\n'); {_FLOOD}"]
FLOOD_WORKER = [sys.executable, "-c", "import os, sys, itertools; print('{\"ready\": true}', "
                f"flush=True); sys.stdin.readline(); {_FLOOD}"]
NOISE = ("Exception ignored", "Event loop is closed", "Traceback", "Task was destroyed")


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'mer.db'}"
    fresh: str = request.getfixturevalue("pg_fresh")
    return fresh


async def _seed(url: str) -> None:
    from mer.db.engine import create_engine
    from mer.db.uow import make_uow_factory

    await migrate(url)
    engine = create_engine(url)
    try:
        async with make_uow_factory(engine)() as uow:
            await uow.servers.add(Server(name="local"))
            await uow.models.add(ModelConfig(name="flood", server="local", command=FLOOD))
            await uow.models.add(ModelConfig(name="flood-worker", server="local", command=FLOOD_WORKER,
                                             mode="worker"))
            await uow.models.add(ModelConfig(name="quick", server="local",
                                             command=[sys.executable, "-c", "print('hello')"]))
            await uow.commit()
    finally:
        await engine.dispose()


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


def _noise(text: str) -> list[str]:
    return [n for n in NOISE if n in text]


def _leave_during(model: str, url: str, tmp_path: Path, tries: int = 1) -> None:
    errors = tmp_path / "stderr.txt"
    for _ in range(tries):
        code = _read_a_line_then_leave(["-c", f"run {model}", "-c", "runs"], _env(tmp_path, url), errors)
        text = errors.read_text()
        assert code == 141, text
        assert not _noise(text), text


async def test_a_reader_that_leaves_during_a_run_leaves_no_noise(url: str, tmp_path: Path) -> None:
    await _seed(url)
    _leave_during("flood", url, tmp_path, tries=2)  # the noise came from a race: try twice


async def test_a_reader_that_leaves_during_a_worker_run_leaves_no_noise(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'mer.db'}"
    await _seed(url)
    _leave_during("flood-worker", url, tmp_path)


async def test_a_reader_that_leaves_between_commands_leaves_no_noise(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'mer.db'}"
    await _seed(url)
    errors = tmp_path / "stderr.txt"
    code = _read_a_line_then_leave(["-c", "run quick", "-c", "runs", "-c", "models", "-c", "runs"],
                                   _env(tmp_path, url), errors)
    text = errors.read_text()
    assert code in (0, 141), text
    assert not _noise(text), text


@pytest.mark.parametrize("model", ["flood", "flood-worker"])
async def test_a_run_that_times_out_leaves_no_noise_at_exit(model: str, tmp_path: Path) -> None:
    """The same unread pipes with the reader still there: the timeout stopped the reading."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'mer.db'}"
    await _seed(url)
    done = subprocess.run([str(BIN / "mer"), "-c", f"run {model} --timeout 0.5"],
                          env=_env(tmp_path, url), stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=60)
    assert done.returncode == 1
    assert "0.5 s" in done.stderr  # "timed out after 0.5 s" / "no response within 0.5 s"
    assert not _noise(done.stderr), done.stderr
