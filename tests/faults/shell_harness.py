"""The mer shell in-process, as `mer` builds it (an InlineBridge, a runtime built on its
loop) on a given database, with its output captured: several shells on one database
stand for several users."""

from __future__ import annotations

import asyncio
import atexit
import functools
import io
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from mer.bootstrap import Runtime, build_runtime
from mer.config import Settings
from mer.shell.app import MerShell
from mer.shell.bridge import InlineBridge
from tests.fixtures_pg import restore_pg, sqlite_path
from tests.shell.harness import Done, run_line

ROOT = Path(__file__).resolve().parents[2]


class InProcessShell:
    def __init__(self, settings: Settings,
                 runtime: Callable[[Settings], Any] = build_runtime) -> None:
        self.settings = settings
        self.bridge = InlineBridge()
        self.stdout = io.StringIO()
        self._started: list[Future[Runtime]] = []

        def start() -> Future[Runtime]:
            if not self._started:
                self._started.append(self.bridge.submit(runtime(settings)))
            return self._started[0]

        self.shell = MerShell(start, self.bridge, allow_edit=settings.allow_edit,
                              json_output=settings.json, stdin=io.StringIO(), stdout=self.stdout)
        self.shell.debug = settings.debug

    def __call__(self, line: str) -> Done:
        return run_line(self.shell, self.stdout, line)

    def close(self) -> None:
        cleanup = None
        if self._started and self._started[0].exception() is None:
            cleanup = self._started[0].result().close()
        self.bridge.close(cleanup)
        asyncio.set_event_loop(None)


async def _prepare(url: str) -> None:
    from mer.db.catalog import load_catalog
    from mer.db.engine import create_engine
    from mer.db.uow import make_uow_factory
    from tests.fixtures_pg import migrate

    await migrate(url)
    engine = create_engine(url)
    try:
        await load_catalog(ROOT / "examples" / "catalog.toml", make_uow_factory(engine))
    finally:
        await engine.dispose()


@functools.cache
def _prepared_sqlite() -> Path:
    root = Path(tempfile.mkdtemp(prefix="mer-catalog-"))
    atexit.register(shutil.rmtree, root, True)
    db = root / "mer.db"
    asyncio.run(_prepare(f"sqlite+aiosqlite:///{db}"))
    leftovers = sorted(p.name for p in root.iterdir() if p != db)
    assert not leftovers, f"the prepared database left {leftovers} beside it"
    return db


async def _prepare_pg(url: str) -> None:
    if not await restore_pg(url, "catalog", _prepare):
        await _prepare(url)


def prepare_database(url: str) -> None:
    """Migrate ``url`` to head and load the example catalog, on a loop of its own (as
    `mer-migrate up --catalog examples/catalog.toml` does). A new SQLite file is a copy
    of one prepared so once per session; an empty PostgreSQL database gets a dump of one
    (tests/fixtures_pg.py ``restore_pg``)."""
    path = sqlite_path(url)
    if path is not None and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(_prepared_sqlite(), path)
        return
    asyncio.run(_prepare_pg(url) if path is None else _prepare(url))
