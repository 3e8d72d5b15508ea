"""Access-log writes of a fan-out, committed together.

A batch runs many models at once on one event loop, and each run writes its row twice.
On SQLite a commit costs several times the statement it commits (the write lock taken
and released, the WAL's frames and index written), and a fan-out's writes arrive in
bursts: the models that ended in one turn of the loop, the ones started in their place.
Writes asked for in the same turn are made in one transaction at the end of it.

Only while more than one run is live (mer/db/run_log.py decides): a lone run's write
is made at once, and a grouped write waits only for the rest of its turn. A write that
fails is made again alone, so one bad write never takes the others with it; the
database held by another writer (busy) fails the group's writes with that error, and
each goes on as a busy write does (to aiosqlite's thread, which waits for the lock). A
write whose caller is cancelled before its turn ends is not made.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["GroupedWrites"]


class GroupedWrites:
    """Statements on one sqlite3 connection (autocommit), grouped per loop turn."""

    def __init__(self, connection: Callable[[], sqlite3.Connection]) -> None:
        self._connection = connection
        self._pending: list[tuple[str, list[Any], asyncio.Future[Sequence[Any]]]] = []

    def write(self, sql: str, args: list[Any]) -> asyncio.Future[Sequence[Any]]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Sequence[Any]] = loop.create_future()
        self._pending.append((sql, args, future))
        if len(self._pending) == 1:
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        # A write whose caller was cancelled meanwhile is not made: as if cancelled
        # before it was asked for.
        group = [w for w in self._pending if not w[2].cancelled()]
        self._pending = []
        if not group:
            return
        conn = self._connection()
        if len(group) == 1:
            _settle(conn, *group[0])
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as err:
            for _, _, future in group:
                _fail(future, err)
            return
        try:
            results = [conn.execute(sql, args).fetchall() for sql, args, _ in group]
            conn.execute("COMMIT")
        except sqlite3.Error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for write in group:  # each alone: the failing one fails, the others land
                _settle(conn, *write)
            return
        for (_, _, future), rows in zip(group, results, strict=True):
            if not future.done():
                future.set_result(rows)


def _settle(conn: sqlite3.Connection, sql: str, args: list[Any],
            future: asyncio.Future[Sequence[Any]]) -> None:
    try:
        rows = conn.execute(sql, args).fetchall()
    except sqlite3.Error as err:
        _fail(future, err)
        return
    if not future.done():
        future.set_result(rows)


def _fail(future: asyncio.Future[Any], err: BaseException) -> None:
    if not future.done():
        future.set_exception(err)
