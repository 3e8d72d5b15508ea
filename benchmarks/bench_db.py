"""DAL cost against the raw drivers, measured in the same run.

- the access log of one run (start row, then finish row, each its own transaction):
  through mer's DAL (SqlAlchemyUnitOfWork) vs raw sqlite3 / asyncpg statements;
- a 1,000,000-float weight vector written and read back: DAL vs raw BLOB / bytea.
On SQLite (WAL, synchronous=NORMAL, as the DAL configures it) and on PostgreSQL when it
answers at 127.0.0.1:5432. Targets: access log <= 2x raw, weight round trip <= 1.5x raw.

    .venv/bin/python benchmarks/bench_db.py [--runs 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
import uuid
from array import array
from datetime import UTC, datetime
from pathlib import Path

from mer.db.engine import create_engine
from mer.db.migrate import upgrade
from mer.db.uow import make_uow_factory
from mer.domain import ModelConfig, RunRecord, RunStatus, Server, utcnow

PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/{db}"
VECTOR = array("d", (i * 0.25 for i in range(1_000_000)))


async def dal_runs(uow_factory, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        rec = RunRecord(model="m", version="1", server="local", os_user="bench")
        async with uow_factory() as uow:
            await uow.runs.start(rec)
            await uow.commit()
        rec.status, rec.exit_code, rec.finished_at = RunStatus.SUCCEEDED, 0, utcnow()
        async with uow_factory() as uow:
            await uow.runs.finish(rec)
            await uow.commit()
    return (time.perf_counter() - t0) / n


async def dal_vector(uow_factory) -> float:
    async with uow_factory() as uow:
        await uow.servers.add(Server(name="local"))
        model = await uow.models.add(ModelConfig(name="m", server="local", command=["true"]))
        await uow.commit()
    t0 = time.perf_counter()
    async with uow_factory() as uow:
        await uow.weights.append(model.id, "w", VECTOR, author="bench")
        await uow.commit()
    async with uow_factory() as uow:
        got = await uow.weights.get(model.id, "w")
    elapsed = time.perf_counter() - t0
    assert got is not None and got.values == VECTOR
    return elapsed


INSERT = ("INSERT INTO access_log (id, model_id, model, version, server, os_user, kind, "
          "weight_revisions, status, exit_code, started_at, finished_at, bytes_in, bytes_out, "
          "stdout, stderr, result, error) VALUES ({})")
UPDATE = ("UPDATE access_log SET status={0}, exit_code={1}, finished_at={2}, bytes_in={3}, "
          "bytes_out={4}, stdout={5}, stderr={6}, result={7}, error={8}, weight_revisions={9} "
          "WHERE id={10}")


def raw_sqlite_runs(path: Path, n: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    ins = INSERT.format(", ".join("?" * 18))
    upd = UPDATE.format(*("?" * 11))
    t0 = time.perf_counter()
    for _ in range(n):
        rid = uuid.uuid4().hex
        now = datetime.now(UTC).isoformat()
        conn.execute("BEGIN")
        conn.execute(ins, (rid, None, "m", "1", "local", "bench", "run", "{}", "running", None,
                           now, None, 0, 0, "", "", None, None))
        conn.execute("COMMIT")
        conn.execute("BEGIN")
        conn.execute(upd, ("succeeded", 0, datetime.now(UTC).isoformat(), 0, 0, "", "", None,
                           None, "{}", rid))
        conn.execute("COMMIT")
    conn.close()
    return (time.perf_counter() - t0) / n


def raw_sqlite_vector(path: Path) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE IF NOT EXISTS raw_w (id TEXT PRIMARY KEY, data BLOB)")
    t0 = time.perf_counter()
    conn.execute("BEGIN")
    conn.execute("INSERT INTO raw_w VALUES (?, ?)", ("w", VECTOR.tobytes()))
    conn.execute("COMMIT")
    data = conn.execute("SELECT data FROM raw_w WHERE id='w'").fetchone()[0]
    back = array("d")
    back.frombytes(data)
    elapsed = time.perf_counter() - t0
    assert back == VECTOR
    conn.close()
    return elapsed


async def raw_pg_runs(dsn: str, n: int) -> float:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    ins = INSERT.format(", ".join(f"${i}" for i in range(1, 19)))
    upd = UPDATE.format(*(f"${i}" for i in range(1, 12)))
    t0 = time.perf_counter()
    for _ in range(n):
        rid = uuid.uuid4()
        async with conn.transaction():
            await conn.execute(ins, rid, None, "m", "1", "local", "bench", "run", "{}", "running",
                               None, datetime.now(UTC), None, 0, 0, "", "", None, None)
        async with conn.transaction():
            await conn.execute(upd, "succeeded", 0, datetime.now(UTC), 0, 0, "", "", None, None,
                               "{}", rid)
    await conn.close()
    return (time.perf_counter() - t0) / n


async def raw_pg_vector(dsn: str) -> float:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    await conn.execute("CREATE TABLE IF NOT EXISTS raw_w (id text PRIMARY KEY, data bytea)")
    t0 = time.perf_counter()
    await conn.execute("INSERT INTO raw_w VALUES ($1, $2)", "w", VECTOR.tobytes())
    data = await conn.fetchval("SELECT data FROM raw_w WHERE id='w'")
    back = array("d")
    back.frombytes(data)
    elapsed = time.perf_counter() - t0
    assert back == VECTOR
    await conn.close()
    return elapsed


def report(name: str, dal: float, raw: float, target: float, unit: str = "ms") -> None:
    ratio = dal / raw
    verdict = "ok" if ratio <= target else "over target"
    print(f"  {name:34} DAL {dal * 1000:9.3f} {unit}   raw {raw * 1000:9.3f} {unit}   "
          f"ratio {ratio:5.2f}x (target <= {target}x: {verdict})")


async def bench(url: str, raw_runs, raw_vector, n: int) -> None:
    engine = create_engine(url)
    await upgrade(engine)
    uow_factory = make_uow_factory(engine)
    await dal_runs(uow_factory, min(200, n))  # warm-up
    dal_run = await dal_runs(uow_factory, n)
    raw_run = await raw_runs(n)
    dal_vec = await dal_vector(uow_factory)
    raw_vec = await raw_vector()
    await engine.dispose()
    report(f"access log, 1 run (x{n})", dal_run, raw_run, 2.0)
    report("1M-float vector write+read", dal_vec, raw_vec, 1.5)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        print(f"SQLite ({path})")

        async def raw_runs(n: int) -> float:
            return raw_sqlite_runs(path, n)

        async def raw_vector() -> float:
            return raw_sqlite_vector(path)

        await bench(f"sqlite+aiosqlite:///{path}", raw_runs, raw_vector, args.runs)

    try:
        import asyncpg

        admin = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres", timeout=3)
    except Exception as err:  # noqa: BLE001 - report and go on without PostgreSQL
        print(f"PostgreSQL: skipped ({err})")
        return
    db = f"mer_bench_{uuid.uuid4().hex[:8]}"
    await admin.execute(f'CREATE DATABASE "{db}"')
    try:
        print(f"PostgreSQL (127.0.0.1:5432/{db})")
        dsn = f"postgresql://postgres@127.0.0.1:5432/{db}"
        await bench(PG.format(db=db), lambda n: raw_pg_runs(dsn, n), lambda: raw_pg_vector(dsn),
                    args.runs)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
