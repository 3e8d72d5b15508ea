"""Shared setup of the fault suite: a migrated database (SQLite and the real PostgreSQL)
with a local server and a few tiny models, and mer's runtime built on it as the shell
builds it (mer/bootstrap.py)."""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from mer.config import Settings
from tests.faults.proxy import Proxy
from tests.faults.shell_harness import InProcessShell, prepare_database
from tests.fixtures_pg import PG_HOST, PG_PORT, _reset_pg, migrate

PY = sys.executable
# A model that reads its request, waits a little and answers.
SLOW = [PY, "-c", "import sys, time; sys.stdin.read(); time.sleep(0.6); print('{\"ok\": 1}')"]
QUICK = [PY, "-c", "import sys; sys.stdin.read(); print('{\"ok\": 1}')"]


async def seed(url: str, **models: list[str]) -> None:
    """Migrate ``url`` and add a local server with ``models`` (name -> argv)."""
    from mer.db.engine import create_engine
    from mer.db.uow import make_uow_factory
    from mer.domain import ModelConfig, Server

    await migrate(url)
    engine = create_engine(url)
    try:
        async with make_uow_factory(engine)() as uow:
            await uow.servers.add(Server(name="local"))
            for name, command in models.items():
                await uow.models.add(ModelConfig(name=name, server="local", command=command))
            await uow.commit()
    finally:
        await engine.dispose()


async def seed_servers(url: str, *servers: Any, **models: tuple[str, list[str]]) -> None:
    """Migrate ``url`` and add ``servers`` and ``models`` (name -> (server, argv))."""
    from mer.db.engine import create_engine
    from mer.db.uow import make_uow_factory
    from mer.domain import ModelConfig

    await migrate(url)
    engine = create_engine(url)
    try:
        async with make_uow_factory(engine)() as uow:
            for server in servers:
                await uow.servers.add(server)
            for name, (server, command) in models.items():
                await uow.models.add(ModelConfig(name=name, server=server, command=command))
            await uow.commit()
    finally:
        await engine.dispose()


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory the remote login user can write (pytest's tmp dirs are private)."""
    path = Path(tempfile.mkdtemp(prefix="mer-faults-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def pg_fresh(pg_url: str) -> str:
    asyncio.run(_reset_pg(pg_url))
    return pg_url


@pytest.fixture
def proxy() -> Any:
    p = Proxy(PG_HOST, PG_PORT)
    yield p
    p.close()


@pytest.fixture
async def runtime_on(tmp_path: Path) -> AsyncIterator[Any]:
    """``await runtime_on(url, **settings)``: mer's runtime on ``url``, closed afterwards."""
    from mer.bootstrap import build_runtime

    built: list[Any] = []

    async def build(url: str, **settings: Any) -> Any:
        runtime = await build_runtime(Settings(database_url=url, data_dir=tmp_path / "data",
                                               **settings))
        built.append(runtime)
        return runtime

    yield build
    for runtime in built:
        await runtime.close()


@pytest.fixture
def shells(db_url: str, tmp_path: Path) -> Iterator[tuple[InProcessShell, InProcessShell]]:
    """Two shells of two users on one database holding the example catalog, with --allow-edit."""
    prepare_database(db_url)
    settings = Settings(database_url=db_url, data_dir=tmp_path, allow_edit=True)
    a, b = InProcessShell(settings), InProcessShell(settings)
    try:
        yield a, b
    finally:
        a.close()
        b.close()
