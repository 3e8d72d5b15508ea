"""The access log's hot path: the two writes every run makes, and the catalog generation.

A run writes its access-log row before the model starts and completes it when the model
ends. Through an ORM session one such write cost ~0.8 ms here (a greenlet, a pooled
connection checked out and reset, half a dozen hops to aiosqlite's thread), more than
starting the model. ``SqlRunLog`` sends the repository's own Core statements, compiled
once for the dialect, with SQLAlchemy's own bind processors applied to the values: the
same SQL and the same stored values as the repository writes, one round trip a write.

- PostgreSQL: one asyncpg connection of the engine's pool, held in autocommit; while a
  write is in flight on it, a concurrent run's write (a batch's fan-out) goes on one of a
  few spare connections instead of waiting its turn (one at a time, writes capped a
  fan-out at two round trips per run).
- SQLite: a write is a few tens of µs of SQLite work, but a round trip to aiosqlite's
  thread costs ~110 µs more here, twice a run. So the write is made on the loop's own
  thread, on a sqlite3 connection that never waits for a lock (busy timeout 0): when
  another writer holds the database, the write goes to an aiosqlite connection of the
  pool instead, which waits for it on its thread while the loop goes on.

A database that blinks (a restart, a failover, ``pg_terminate_backend``) costs a run
nothing: a write whose connection is gone is made again on a new one, for up to
``retry_for`` seconds. Both writes are safe to repeat (mer/db/run_records.py). A final
write that still cannot reach the database goes to the journal (mer/db/journal.py),
replayed by the next connection that succeeds.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import JSON, literal_column, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from mer.db.engine import map_errors
from mer.db.journal import RunJournal
from mer.db.orm import CatalogStateRow
from mer.db.run_records import (
    RUN_CLAIM,
    RUN_END,
    RUN_FINISH,
    RUN_INSERT,
    SqlRunRepository,
    replay_record,
    row_exists,
    storable_encoder,
)
from mer.db.wal_checkpoints import BackgroundCheckpoints
from mer.domain import RunRecord, RunStatus
from mer.errors import DatabaseUnreachable, RecordJournaled, StorageError

__all__ = ["SqlRunLog"]

log = logging.getLogger(__name__)

_BUSY = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
SPARE_CONNECTIONS = 3  # PostgreSQL: connections beside the main one, for concurrent writes


def _unchanged(value: Any) -> Any:
    return value


class _Statement:
    """A Core statement compiled for one dialect, called with a dict of values. A JSON
    document is made storable as it is encoded (one encoding, where cleaning it first
    and encoding it after cost two): the records' values come with ``clean=_unchanged``."""

    def __init__(self, stmt: ClauseElement, dialect: Any, keys: list[str] | None = None) -> None:
        compiled = stmt.compile(dialect=dialect, column_keys=keys)
        assert isinstance(compiled, SQLCompiler)  # a DML or SELECT statement's compiler
        self.sql = compiled.string
        self.names: list[str] = list(compiled.positiontup or [])
        self._process: list[tuple[int, Callable[[Any], Any]]] = []
        for i, name in enumerate(self.names):
            type_ = compiled.binds[name].type
            process = type_.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                json_doc = getattr(type_, "_type_affinity", None) is JSON
                self._process.append((i, storable_encoder(process) if json_doc else process))

    def args(self, values: dict[str, Any]) -> list[Any]:
        args = [values[n] for n in self.names]
        for i, process in self._process:
            args[i] = process(args[i])
        return args


def _generation(rows: Sequence[Any]) -> int | None:
    """The catalog generation a statement returned (None: no catalog loaded yet)."""
    value = rows[0][0]
    return None if value is None else int(value)


class SqlRunLog:
    """Writes access-log rows and reads the catalog generation on a connection of its own."""

    def __init__(self, engine: AsyncEngine, *, journal: RunJournal | None = None,
                 retry_for: float = 10.0) -> None:
        self._engine = engine
        self.journal = journal
        self.retry_for = retry_for
        self._journal_lock = asyncio.Lock()  # appends and replays of this process, in turn
        self._conn: AsyncConnection | None = None
        self._driver: Any = None
        self._opening = asyncio.Lock()
        self._busy = asyncio.Lock()
        self._spares: list[tuple[AsyncConnection, Any]] = []  # idle spare connections
        self._spare_slots = asyncio.Semaphore(SPARE_CONNECTIONS)
        dialect = engine.dialect
        self._postgres = dialect.name == "postgresql"
        url = engine.url
        # NOTE: a URL with query options (uri=true, mode=...) is left to aiosqlite alone.
        self._inline_path = url.database if dialect.name == "sqlite" and not url.query else None
        self._inline: sqlite3.Connection | None = None
        self._checkpoints = BackgroundCheckpoints("")  # made with the inline connection
        self._url = url.render_as_string()  # for messages: rendered once, not per write
        generation = (select(CatalogStateRow.generation)
                      .where(CatalogStateRow.id == literal_column("1")).scalar_subquery())
        self._generation = _Statement(select(generation), dialect)
        # The insert returns the generation: one round trip both writes and checks a
        # cached plan.
        self._insert = _Statement(RUN_INSERT.returning(generation), dialect, SqlRunRepository.COLUMNS)
        self._update = _Statement(RUN_FINISH, dialect)
        self._end = _Statement(RUN_END, dialect)
        # run id -> the snapshot this log last wrote for it: an ending leaves it as it is.
        self._snapshots: dict[UUID, Any] = {}
        self._claim = _Statement(RUN_CLAIM, dialect)

    async def _driver_connection(self) -> Any:
        if self._driver is None:
            async with self._opening:
                if self._driver is None:
                    self._conn, self._driver = await self._open()
                if self.journal is not None and self.journal.pending():
                    try:
                        await self.replay()
                    except StorageError:
                        log.warning("replaying %s failed; kept for later", self.journal.path,
                                    exc_info=True)
        return self._driver

    async def _open(self) -> tuple[AsyncConnection, Any]:
        """A connection of the engine's pool in autocommit, and its driver's connection."""
        with map_errors(self._url, "opening the access log"):
            conn = await self._engine.connect()
            try:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                raw = await conn.get_raw_connection()
            except BaseException:
                await conn.close()
                raise
        return conn, raw.driver_connection

    async def _drop_connection(self) -> None:
        """Forget the connections (a broken one, and the spares: what broke one broke
        them all); the next write opens a new one."""
        conn, self._conn, self._driver = self._conn, None, None
        spares, self._spares = self._spares, []
        for c in [conn, *(c for c, _ in spares)]:
            if c is not None:
                await _discard(c)

    async def _fetch_on_spare(self, sql: str, args: list[Any]) -> Sequence[Any]:
        """A write while the main connection is busy: on an idle spare, or a new one."""
        async with self._spare_slots:
            conn, driver = self._spares.pop() if self._spares else await self._open()
            try:
                rows = await self._fetch(driver, sql, args)
            except BaseException:
                await _discard(conn)
                raise
            self._spares.append((conn, driver))
            return rows

    async def _fetch(self, driver: Any, sql: str, args: list[Any]) -> Sequence[Any]:
        try:
            rows: Sequence[Any] = await driver.fetch(sql, *args)
            return rows
        except Exception as err:
            # A backend terminated under an idle connection can leave asyncpg's
            # protocol in a state it reports only as an internal error.
            if driver.is_closed() or type(err).__name__ == "InternalClientError":
                raise DatabaseUnreachable(f"the database connection broke: {err}") from err
            raise

    def _inline_connection(self, path: str) -> sqlite3.Connection:
        if self._inline is None:
            conn = sqlite3.connect(path, timeout=0, isolation_level=None)
            # Per connection, as the engine's (mer/db/engine.py); the database is in WAL.
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA wal_autocheckpoint=0")  # on a thread instead: wal_checkpoints.py
            self._inline = conn
            self._checkpoints = BackgroundCheckpoints(path)
        return self._inline

    async def _execute(self, stmt: _Statement, values: dict[str, Any], what: str) -> Sequence[Any]:
        """One statement, made again on a new connection while the database is
        unreachable, for up to ``retry_for`` seconds."""
        args = stmt.args(values)
        deadline = time.monotonic() + self.retry_for
        pause = 0.05
        while True:
            try:
                return await self._execute_once(stmt, args, what)
            except DatabaseUnreachable:
                await self._drop_connection()
                if time.monotonic() + pause > deadline:
                    raise
                log.info("%s: the database connection broke; trying a new one", what)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 1.0)

    async def _execute_once(self, stmt: _Statement, args: list[Any], what: str) -> Sequence[Any]:
        with map_errors(self._url, what=what):
            if self._inline_path is not None:
                try:
                    done = self._inline_connection(self._inline_path).execute(stmt.sql, args).fetchall()
                except sqlite3.OperationalError as err:
                    if err.sqlite_errorcode not in _BUSY:
                        raise
                    # Locked by another writer, nothing written: wait on aiosqlite's thread.
                else:
                    self._checkpoints.wrote()
                    return done
            driver = await self._driver_connection()
            rows: Sequence[Any]
            if not self._postgres:
                rows = await driver.execute_fetchall(stmt.sql, args)
                return rows
            if self._busy.locked():
                return await self._fetch_on_spare(stmt.sql, args)
            async with self._busy:  # one statement at a time on an asyncpg connection
                return await self._fetch(driver, stmt.sql, args)

    async def catalog_generation(self) -> int | None:
        rows = await self._execute(self._generation, {}, "reading the catalog generation")
        return _generation(rows)

    async def start(self, record: RunRecord) -> int | None:
        try:
            rows = await self._execute(self._insert, SqlRunRepository.start_values(record, _unchanged),
                                       "writing the access log")
        except StorageError:
            # A retried insert whose first try did arrive (its reply was lost) finds its
            # own row: the run is recorded once, and goes on.
            if not await self._written(record):
                raise
            self._snapshots[record.id] = record.snapshot
            return await self.catalog_generation()
        self._snapshots[record.id] = record.snapshot
        return _generation(rows)

    async def _written(self, record: RunRecord) -> bool:
        try:
            return await row_exists(self._engine, record.id)
        except StorageError:
            return False

    async def claim(self, record: RunRecord) -> None:
        await self._execute(self._claim, SqlRunRepository.claim_values(record),
                            "recording the model's process group")

    def _write_over(self, record: RunRecord) -> tuple[_Statement, dict[str, Any]]:
        """The statement and values that write the record over its row: its ending
        alone while the snapshot this log wrote for it still stands."""
        written = record.snapshot is not None and self._snapshots.get(record.id) is record.snapshot
        return ((self._end, SqlRunRepository.finish_values(record, False, _unchanged)) if written
                else (self._update, SqlRunRepository.finish_values(record, True, _unchanged)))

    def _wrote_over(self, record: RunRecord) -> None:
        if record.status is RunStatus.RUNNING:
            self._snapshots[record.id] = record.snapshot
        else:
            self._snapshots.pop(record.id, None)

    def update_at_once(self, record: RunRecord) -> bool:
        """Write the record over its row now, on the loop's thread, when that needs no
        waiting (SQLite, no other writer): True. False: nothing was written, and
        ``update`` makes the write (retried, journaled, reported)."""
        if self._inline is None:
            return False
        stmt, values = self._write_over(record)
        try:
            self._inline.execute(stmt.sql, stmt.args(values)).fetchall()
        except sqlite3.Error:
            return False  # locked, or failing: ``update`` decides, as for any write
        self._checkpoints.wrote()
        self._wrote_over(record)
        return True

    async def update(self, record: RunRecord) -> None:
        """Write the record over its row. A final record that cannot reach the database
        is kept in the journal; RecordJournaled says so."""
        stmt, values = self._write_over(record)
        self._wrote_over(record)
        try:
            await self._execute(stmt, values, "completing the access log")
        except DatabaseUnreachable as err:
            if self.journal is None or record.status is RunStatus.RUNNING:
                raise
            async with self._journal_lock:
                try:
                    self.journal.append(record)
                except OSError as io:
                    raise StorageError(f"{err}; and keeping run {record.id.hex[:8]}'s record in "
                                       f"{self.journal.path} failed: {io.strerror}") from io
            raise RecordJournaled(
                f"the database is unreachable: run {record.id.hex[:8]}'s record is kept in "
                f"{self.journal.path} and will be written when the database is back"
            ) from err

    async def replay(self) -> int:
        """Write the journaled records; returns how many. Raises StorageError (the
        journal is then kept)."""
        if self.journal is None:
            return 0
        async with self._journal_lock:
            count = await self.journal.replay(lambda r: replay_record(self._engine, r))
        if count:
            log.warning("wrote %d run record(s) kept in %s", count, self.journal.path)
        return count

    async def close(self) -> None:
        if self._inline is not None:
            inline, self._inline = self._inline, None
            self._checkpoints.close()
            inline.close()
        if self._conn is not None:
            conn, self._conn, self._driver = self._conn, None, None
            await conn.close()
        spares, self._spares = self._spares, []
        for spare, _ in spares:
            await spare.close()


async def _discard(conn: AsyncConnection) -> None:
    try:
        await conn.invalidate()
        await conn.close()
    except Exception:  # noqa: BLE001 - it is broken already; nothing to save
        log.debug("closing a broken run-log connection failed", exc_info=True)
