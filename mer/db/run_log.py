"""The access log's hot path: the two writes every run makes, and the catalog generation.

A run writes its access-log row before the model starts and completes it when the model
ends. Through an ORM session one such write cost ~0.8 ms here (a greenlet, a pooled
connection checked out and reset, half a dozen hops to aiosqlite's thread), more than
starting the model. ``SqlRunLog`` sends the repository's own Core statements, compiled
once for the dialect, with SQLAlchemy's own bind processors applied to the values: the
same SQL and the same stored values as the repository writes, one round trip a write.

- PostgreSQL: one asyncpg connection of the engine's pool, held in autocommit.
- SQLite: a write is a few tens of µs of SQLite work, but a round trip to aiosqlite's
  thread costs ~110 µs more here, twice a run. So the write is made on the loop's own
  thread, on a sqlite3 connection that never waits for a lock (busy timeout 0): when
  another writer holds the database, the write goes to an aiosqlite connection of the
  pool instead, which waits for it on its thread while the loop goes on.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import Any

from sqlalchemy import literal_column, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import ClauseElement

from mer.db.engine import map_errors
from mer.db.orm import CatalogStateRow
from mer.db.repository import RUN_FINISH, RUN_INSERT, SqlRunRepository
from mer.domain import RunRecord

__all__ = ["SqlRunLog"]

_BUSY = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class _Statement:
    """A Core statement compiled for one dialect, called with a dict of values."""

    def __init__(self, stmt: ClauseElement, dialect: Any, keys: list[str] | None = None) -> None:
        compiled = stmt.compile(dialect=dialect, column_keys=keys)
        self.sql = compiled.string
        self.names: list[str] = list(compiled.positiontup or [])
        self._process: list[Callable[[Any], Any] | None] = [
            compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            for name in self.names
        ]

    def args(self, values: dict[str, Any]) -> list[Any]:
        return [v if p is None else p(v)
                for v, p in zip((values[n] for n in self.names), self._process, strict=True)]


class SqlRunLog:
    """Writes access-log rows and reads the catalog generation on a connection of its own."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._conn: AsyncConnection | None = None
        self._driver: Any = None
        self._opening = asyncio.Lock()
        dialect = engine.dialect
        self._postgres = dialect.name == "postgresql"
        url = engine.url
        # NOTE: a URL with query options (uri=true, mode=...) is left to aiosqlite alone.
        self._inline_path = url.database if dialect.name == "sqlite" and not url.query else None
        self._inline: sqlite3.Connection | None = None
        generation = (select(CatalogStateRow.generation)
                      .where(CatalogStateRow.id == literal_column("1")).scalar_subquery())
        self._generation = _Statement(select(generation), dialect)
        # The insert returns the generation: one round trip both writes and checks a
        # cached plan.
        self._insert = _Statement(RUN_INSERT.returning(generation), dialect, SqlRunRepository.COLUMNS)
        self._update = _Statement(RUN_FINISH, dialect)

    async def _driver_connection(self) -> Any:
        if self._driver is None:
            async with self._opening:
                if self._driver is None:
                    with map_errors(self._engine.url.render_as_string(), "opening the access log"):
                        conn = await self._engine.connect()
                        try:
                            await conn.execution_options(isolation_level="AUTOCOMMIT")
                            raw = await conn.get_raw_connection()
                        except BaseException:
                            await conn.close()
                            raise
                    self._conn, self._driver = conn, raw.driver_connection
        return self._driver

    def _inline_connection(self) -> sqlite3.Connection:
        if self._inline is None:
            conn = sqlite3.connect(self._inline_path, timeout=0, isolation_level=None)  # type: ignore[arg-type]
            # Per connection, as the engine's (mer/db/engine.py); the database is in WAL.
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._inline = conn
        return self._inline

    async def _execute(self, stmt: _Statement, values: dict[str, Any], what: str) -> Any:
        args = stmt.args(values)
        with map_errors(what=what):
            if self._inline_path is not None:
                try:
                    return self._inline_connection().execute(stmt.sql, args).fetchall()
                except sqlite3.OperationalError as err:
                    if err.sqlite_errorcode not in _BUSY:
                        raise
                    # Locked by another writer, nothing written: wait on aiosqlite's thread.
            driver = await self._driver_connection()
            if self._postgres:
                return await driver.fetch(stmt.sql, *args)
            return await driver.execute_fetchall(stmt.sql, args)

    async def catalog_generation(self) -> int | None:
        rows = await self._execute(self._generation, {}, "reading the catalog generation")
        return rows[0][0]

    async def start(self, record: RunRecord) -> int | None:
        rows = await self._execute(self._insert, SqlRunRepository.start_values(record),
                                   "writing the access log")
        return rows[0][0]

    async def update(self, record: RunRecord) -> None:
        await self._execute(self._update, SqlRunRepository.finish_values(record),
                            "completing the access log")

    async def close(self) -> None:
        if self._inline is not None:
            inline, self._inline = self._inline, None
            inline.close()
        if self._conn is not None:
            conn, self._conn, self._driver = self._conn, None, None
            await conn.close()
