"""Database fixtures: the real PostgreSQL server and SQLite, side by side.

- ``pg_url``: a fresh PostgreSQL database for this test session (created through asyncpg
  on 127.0.0.1:5432 as user postgres, dropped afterwards). Without a server the test
  skips, except under CI=true, where it fails.
- ``db_url``: parametrised over ["sqlite", "postgres"]: an empty database URL (a new
  SQLite file per test; the PostgreSQL database emptied before each test).
- ``engine`` / ``uow_factory``: ``db_url`` migrated to head, with a UnitOfWorkFactory.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import skip_or_fail

PG_HOST = os.environ.get("MER_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("MER_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("MER_TEST_PG_USER", "postgres")


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
    yield f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
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


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[Any]:
    from mer.db.engine import create_engine
    from mer.db.migrate import upgrade

    eng = create_engine(db_url)
    await upgrade(eng)
    yield eng
    await eng.dispose()


@pytest.fixture
def uow_factory(engine: Any) -> Any:
    from mer.db.uow import make_uow_factory

    return make_uow_factory(engine)
