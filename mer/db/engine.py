"""Engine and session factory for the MER database, and the translation of database
errors into MerErrors at this layer's edge.

SQLite (aiosqlite) gets foreign keys, WAL, synchronous=NORMAL and a busy timeout on
every connection; PostgreSQL uses asyncpg. The engine belongs to the event loop it is
first used on: create it once per process, on the loop that will use it.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from mer.config import URL_HINT, database_url, mask_password
from mer.errors import ConfigError, ConflictError, DatabaseUnreachable, StorageError

__all__ = ["connection_lost", "create_engine", "make_session_factory", "map_errors"]


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """Build the async engine for ``url`` (``postgres://``, ``sqlite:///`` and the
    explicit driver forms). Raises ConfigError for a URL mer cannot use."""
    try:
        parsed = make_url(database_url(url))
    except exc.ArgumentError as err:
        raise ConfigError(f"database URL {mask_password(url)!r} is not a URL; {URL_HINT}") from err
    if parsed.get_backend_name() == "postgresql":
        return create_async_engine(parsed, echo=echo, pool_pre_ping=True)
    # sqlite+aiosqlite: database_url allows nothing else.
    if not parsed.database or parsed.database == ":memory:" or "mode=memory" in str(parsed):
        # NOTE: one connection shared by everyone, gone with the process; an error in
        # one transaction closed it for all (seen here). mer's data must outlive it.
        raise ConfigError(f"{mask_password(url)!r} is an in-memory database, which vanishes "
                          f"with the process; use a file: sqlite+aiosqlite:///path/to/mer.db")
    if parsed.database:
        try:
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(f"cannot create the directory of {parsed.database}: {err}") from err
    engine = create_async_engine(parsed, echo=echo, connect_args={"timeout": 5})
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def make_session_factory(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@contextlib.contextmanager
def map_errors(url: str | None = None, what: str = "the database") -> Iterator[None]:
    """Turn SQLAlchemy/driver/OS errors into StorageError (ConflictError for a
    serialization failure), with a message for the user."""
    try:
        yield
    except (StorageError, ConfigError, ConflictError):
        raise
    except exc.DBAPIError as err:
        orig = err.orig
        text = _first_line(orig) if orig is not None else str(err)
        if err.connection_invalidated or connection_lost(err):
            raise DatabaseUnreachable(_unreachable(url, text)) from err
        raise _failed(what, text) from err
    except exc.SQLAlchemyError as err:
        raise StorageError(f"{what} failed: {err}") from err
    except (OSError, ConnectionError, TimeoutError) as err:
        raise DatabaseUnreachable(_unreachable(url, str(err) or type(err).__name__)) from err
    except Exception as err:
        # A driver's own error, where mer talks to the driver itself (mer/db/run_log.py).
        if not (isinstance(err, sqlite3.Error) or type(err).__module__.startswith("asyncpg.")):
            raise
        if connection_lost(err):
            raise DatabaseUnreachable(_unreachable(url, _first_line(err))) from err
        raise _failed(what, _first_line(err)) from err


# SQLSTATE classes of a connection that broke or a server that is going away:
# 08 (connection exception), 57P01-57P03 (admin shutdown, crash shutdown, cannot connect now).
_LOST_STATES = ("08", "57P01", "57P02", "57P03")


def connection_lost(err: BaseException) -> bool:
    """Whether ``err`` (or what caused it) says the database connection is gone, so that
    the same work on a new connection may succeed."""
    seen: BaseException | None = err
    for _ in range(6):  # SQLAlchemy and the adapters wrap the driver's error a few times
        if seen is None:
            return False
        if isinstance(seen, (OSError, ConnectionError, TimeoutError)):
            return True
        state = getattr(seen, "sqlstate", None)
        if isinstance(state, str) and state.startswith(_LOST_STATES):
            return True
        if "connection is closed" in str(seen) or "connection was closed" in str(seen):
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def _failed(what: str, text: str) -> StorageError:
    if "database is locked" in text:
        return StorageError("the database is busy (locked by another writer); retry")
    return StorageError(f"{what} failed: {text}")


def _unreachable(url: str | None, reason: str) -> str:
    where = f" at {mask_password(url)}" if url else ""
    return f"cannot reach the database{where}: {reason}; check MER_DATABASE_URL"
