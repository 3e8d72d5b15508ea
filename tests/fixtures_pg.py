"""Database fixtures: the real PostgreSQL server and SQLite, side by side.

- ``pg_url``: a fresh PostgreSQL database for this test session (created through asyncpg
  on 127.0.0.1:5432 as user postgres, dropped afterwards). Without a server the test
  skips, except under CI=true, where it fails.
- ``db_url``: parametrised over ["sqlite", "postgres"]: an empty database URL (a new
  SQLite file per test; the PostgreSQL database emptied before each test).
- ``engine`` / ``uow_factory``: ``db_url`` migrated to head, with a UnitOfWorkFactory
  (``migrate``: a new SQLite file is a copy of one migrated once per session, and an
  empty PostgreSQL schema gets a pg_dump of one migrated once per session).
- ``restore_pg(url, key, prepare)``: an empty PostgreSQL database made what ``prepare``
  makes by restoring a pg_dump of a database it prepared once per session (Alembic's
  ~120 ms a test is ~40 ms so); tests/db/test_restored_schema.py checks they are equal.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import skip_or_fail

PG_HOST = os.environ.get("MER_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("MER_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("MER_TEST_PG_USER", "postgres")


def _pg_url(name: str) -> str:
    return f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres",
                                 timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    name = f"mer_test_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except (TimeoutError, OSError) as err:
        skip_or_fail(f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT}: {err}")
    except Exception as err:  # asyncpg's own errors (auth, permissions)
        skip_or_fail(f"cannot create a PostgreSQL test database: {err}")
    yield _pg_url(name)
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _reset_pg(url: str) -> None:
    """Empty the session database: drop and recreate its public schema."""
    import asyncpg

    dbname = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=dbname)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'mer.db'}"
    url: str = request.getfixturevalue("pg_url")
    asyncio.run(_reset_pg(url))
    return url


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL; None for another database."""
    return Path(url.split("///", 1)[1]) if url.startswith("sqlite") else None


async def _upgrade(url: str) -> None:
    from mer.db.engine import create_engine
    from mer.db.migrate import upgrade

    engine = create_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


_MIGRATED: list[Path] = []


async def _migrated_sqlite() -> Path:
    """A SQLite file migrated to head, made once per session (copied, never used)."""
    if not _MIGRATED:
        root = Path(tempfile.mkdtemp(prefix="mer-migrated-"))
        atexit.register(shutil.rmtree, root, True)
        db = root / "mer.db"
        await _upgrade(f"sqlite+aiosqlite:///{db}")
        leftovers = sorted(p.name for p in root.iterdir() if p != db)
        assert not leftovers, f"the migrated database left {leftovers} beside it"
        _MIGRATED.append(db)
    return _MIGRATED[0]


_DUMPS: dict[str, str | None] = {}


async def _dump(prepare: Callable[[str], Awaitable[None]]) -> str | None:
    """``prepare`` run on a throwaway database, written out by pg_dump as SQL for one
    asyncpg ``execute``; None when pg_dump is missing or fails."""
    name = f"mer_dumped_{uuid.uuid4().hex[:10]}"
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        await prepare(_pg_url(name))
        # --inserts: asyncpg runs INSERTs, not COPY ... FROM stdin.
        argv = ["pg_dump", "--no-owner", "--no-privileges", "--inserts", "-h", PG_HOST,
                "-p", str(PG_PORT), "-U", PG_USER, "-d", name]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                              env={**os.environ, "PGCONNECT_TIMEOUT": "5"})
    except (OSError, subprocess.TimeoutExpired):
        return None
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    if done.returncode != 0:
        return None
    # psql meta-commands are not SQL: pg_dump 15.14+ writes \restrict and \unrestrict.
    return "".join(line for line in done.stdout.splitlines(keepends=True)
                   if not line.startswith("\\"))


async def dumped_pg(key: str, prepare: Callable[[str], Awaitable[None]]) -> str | None:
    """The public schema and rows of a PostgreSQL database that ``prepare`` made from
    empty, as SQL (``_dump``), made once per session for each ``key``."""
    if key not in _DUMPS:
        _DUMPS[key] = await _dump(prepare)
    return _DUMPS[key]


async def _restore_pg(url: str, sql: str) -> bool:
    """Run ``sql`` on ``url`` if its public schema is empty; False if it is not."""
    import asyncpg
    from sqlalchemy.engine import make_url

    target = make_url(url)
    conn = await asyncpg.connect(host=target.host, port=target.port, user=target.username,
                                 password=target.password, database=target.database)
    try:
        if await conn.fetchval(
                "SELECT EXISTS (SELECT FROM pg_class WHERE relnamespace = 'public'::regnamespace)"
                " OR EXISTS (SELECT FROM pg_proc WHERE pronamespace = 'public'::regnamespace)"):
            return False
        await conn.execute(sql)  # one implicit transaction: all or nothing
        return True
    finally:
        await conn.close()


async def restore_pg(url: str, key: str, prepare: Callable[[str], Awaitable[None]]) -> bool:
    """Make the empty PostgreSQL database ``url`` what ``prepare`` makes, from its dump
    (``dumped_pg``); False, with nothing done, when there is no dump or ``url`` is not
    empty."""
    sql = await dumped_pg(key, prepare)
    return sql is not None and await _restore_pg(url, sql)


async def migrate(url: str) -> None:
    """Migrate ``url`` to head. A new SQLite file is a copy of one migrated once per
    session, and an empty PostgreSQL schema is restored from a dump of one migrated once
    per session (tests/db/test_restored_schema.py: the same database), without paying
    Alembic for each. Anything else goes through Alembic."""
    path = sqlite_path(url)
    if path is not None and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(await _migrated_sqlite(), path)
        return
    if path is None and await restore_pg(url, "migrated", _upgrade):
        return
    await _upgrade(url)


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[Any]:
    from mer.db.engine import create_engine

    await migrate(db_url)
    eng = create_engine(db_url)
    yield eng
    await eng.dispose()


@pytest.fixture
def uow_factory(engine: Any) -> Any:
    from mer.db.uow import make_uow_factory

    return make_uow_factory(engine)
