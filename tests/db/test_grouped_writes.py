"""Writes of one loop turn in one transaction (mer/db/grouped_writes.py), on a real
SQLite file: each caller gets its own rows or its own error, and nothing else."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from mer.db.grouped_writes import GroupedWrites


def _db(tmp_path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    return conn


def _count_commits(conn: sqlite3.Connection) -> list[str]:
    seen: list[str] = []
    conn.set_trace_callback(lambda sql: seen.append(sql) if sql in ("COMMIT", "BEGIN IMMEDIATE") else None)
    return seen


async def test_one_turns_writes_share_one_transaction_and_each_gets_its_rows(tmp_path: Path) -> None:
    conn = _db(tmp_path)
    seen = _count_commits(conn)
    writes = GroupedWrites(lambda: conn)
    futures = [writes.write("INSERT INTO t (id, v) VALUES (?, ?) RETURNING id", [i, f"v{i}"])
               for i in range(4)]
    results = await asyncio.gather(*futures)
    assert [r[0][0] for r in results] == [0, 1, 2, 3]
    assert seen == ["BEGIN IMMEDIATE", "COMMIT"]
    assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 4


async def test_a_failing_write_fails_alone(tmp_path: Path) -> None:
    conn = _db(tmp_path)
    conn.execute("INSERT INTO t VALUES (1, 'taken')")
    writes = GroupedWrites(lambda: conn)
    ok1 = writes.write("INSERT INTO t VALUES (?, ?)", [2, "a"])
    bad = writes.write("INSERT INTO t VALUES (?, ?)", [1, "again"])
    ok2 = writes.write("INSERT INTO t VALUES (?, ?)", [3, "b"])
    await ok1, await ok2
    with pytest.raises(sqlite3.IntegrityError):
        await bad
    assert conn.execute("SELECT id, v FROM t ORDER BY id").fetchall() == [(1, "taken"), (2, "a"), (3, "b")]
    assert not conn.in_transaction


async def test_a_write_cancelled_before_its_turn_ends_is_not_made(tmp_path: Path) -> None:
    conn = _db(tmp_path)
    writes = GroupedWrites(lambda: conn)
    kept = writes.write("INSERT INTO t VALUES (?, ?)", [1, "kept"])
    dropped = writes.write("INSERT INTO t VALUES (?, ?)", [2, "dropped"])
    dropped.cancel()
    await kept
    assert conn.execute("SELECT id FROM t").fetchall() == [(1,)]


async def test_a_database_held_by_another_writer_fails_the_group_busy(tmp_path: Path) -> None:
    conn = _db(tmp_path)
    other = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    mine = sqlite3.connect(tmp_path / "t.db", isolation_level=None, timeout=0)
    writes = GroupedWrites(lambda: mine)
    a = writes.write("INSERT INTO t VALUES (?, ?)", [1, "a"])
    b = writes.write("INSERT INTO t VALUES (?, ?)", [2, "b"])
    for future in (a, b):
        with pytest.raises(sqlite3.OperationalError) as err:
            await future
        assert err.value.sqlite_errorcode == sqlite3.SQLITE_BUSY
    other.execute("ROLLBACK")
    assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 0
