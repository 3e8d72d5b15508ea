"""The access log at a million rows, on SQLite and on PostgreSQL (when it answers at
127.0.0.1:5432): listings, a run's own writes, and a prune beside a running shell.

The log is filled straight through the drivers (sqlite3 executemany, asyncpg COPY): 1M
runs over 90 days, 200 models, 5% failed, with a little output each. Then, medians:
- listings through mer's services (what `runs ...` runs, without printing), next to the
  same SQL sent raw through the driver in the same run:
  `runs --model M --limit 50` (target < 20 ms), `runs --status failed --since 1d`
  (target < 50 ms), a keyset page deep in the log (`--before ID`), `--page 100`;
- a run's two access-log writes (mer/db/run_log.py: the insert, then the final update)
  on the 1M-row log, next to the same on an empty log ("run keeps its per-run cost");
- `runs prune --before 80d` (~110k rows) while another task keeps writing runs as a
  shell running models would: the prune's rate and the longest wait of those writes.
`--revision 0007` builds the log at the schema before migration 0010 (its single-column
indexes) for a before/after comparison.

    .venv/bin/python benchmarks/bench_scale.py [--rows 1000000] [--only sqlite,postgres]
        [--revision 0010] [--no-prune]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mer.db.engine import create_engine  # noqa: E402
from mer.db.migrate import _chain, upgrade  # noqa: E402
from mer.db.run_listing import page_statement  # noqa: E402
from mer.db.run_log import SqlRunLog  # noqa: E402
from mer.db.uow import make_uow_factory  # noqa: E402
from mer.domain import RunRecord, RunStatus, utcnow  # noqa: E402
from mer.services.context import ServiceContext  # noqa: E402
from mer.services.retention import prune_runs  # noqa: E402
from mer.services.run_pages import list_run_page  # noqa: E402
from tests.fakes import FakeExecutor, FakeRegistry  # noqa: E402

MODELS = 200
SPAN = timedelta(days=90)
COLUMNS = ("id", "model", "version", "server", "os_user", "kind", "weight_revisions", "status",
           "exit_code", "started_at", "finished_at", "bytes_in", "bytes_out", "stdout", "stderr")
OUTPUT = "step 1/3 loading\nstep 2/3 fitting\nstep 3/3 done\n" + json.dumps({"y": [0.5] * 8})


def _status(i: int) -> tuple[str, int | None]:
    k = i % 100
    if k < 5:
        return "failed", 1
    if k < 7:
        return "timeout", None
    if k < 9:
        return "cancelled", None
    if k < 10:
        return "lost", None
    return "succeeded", 0


def rows(n: int, now: datetime) -> Iterator[tuple[Any, ...]]:
    """Run i started i * SPAN / n ago (newest first), of model i % MODELS."""
    step = SPAN / n
    for i in range(n):
        status, code = _status(i * 7919 % n)  # spread over time, not striped
        started = now - step * i
        yield (uuid.uuid4(), f"m{i % MODELS}", "1", "local", "bench", "run", "{}", status, code,
               started, started + timedelta(milliseconds=90), 120, len(OUTPUT), OUTPUT, "")


def median_ms(times: list[float]) -> float:
    return statistics.median(times) * 1000


async def timed(n: int, fn: Callable[[int], Awaitable[Any]]) -> float:
    await fn(0)
    times = []
    for k in range(1, n + 1):
        t0 = time.perf_counter()
        await fn(k)
        times.append(time.perf_counter() - t0)
    return median_ms(times)


def line(name: str, mer_ms: float, raw_ms: float | None = None, target_ms: float | None = None,
         note: str = "") -> None:
    text = f"  {name:44} {mer_ms:9.3f} ms"
    if raw_ms is not None:
        text += f"   raw {raw_ms:8.3f} ms  {mer_ms / raw_ms:5.2f}x"
    if target_ms is not None:
        text += f"   (target < {target_ms:g} ms: {'ok' if mer_ms < target_ms else 'OVER'})"
    print(text + (f"  {note}" if note else ""), flush=True)


class Raw:
    """The same SQL through the bare driver: the baseline of each listing."""

    def __init__(self, engine: Any, dsn: str) -> None:
        self.engine, self.dsn = engine, dsn
        self.pg = engine.dialect.name == "postgresql"
        self.conn: Any = None

    async def open(self) -> None:
        if self.pg:
            import asyncpg

            self.conn = await asyncpg.connect(self.dsn)
        else:
            self.conn = sqlite3.connect(self.dsn)

    def sql(self, stmt: Any) -> str:
        return str(stmt.compile(dialect=self.engine.dialect, compile_kwargs={"literal_binds": True}))

    async def fetch(self, sql: str) -> list[Any]:
        if self.pg:
            return list(await self.conn.fetch(sql))
        return self.conn.execute(sql).fetchall()

    async def plan(self, stmt: Any) -> str:
        sql = self.sql(stmt)
        if self.pg:
            rows = await self.conn.fetch("EXPLAIN " + sql)
            return " / ".join(r[0].strip() for r in rows)
        return " / ".join(r[-1] for r in self.conn.execute("EXPLAIN QUERY PLAN " + sql))

    async def close(self) -> None:
        if self.pg:
            await self.conn.close()
        else:
            self.conn.close()


async def fill_sqlite(path: Path, n: int, now: datetime) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    sql = f"INSERT INTO access_log ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    batch: list[tuple[Any, ...]] = []
    conn.execute("BEGIN")
    for r in rows(n, now):
        batch.append((r[0].hex, *r[1:9], r[9].astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"),
                      r[10].astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"), *r[11:]))
        if len(batch) == 50_000:
            conn.executemany(sql, batch)
            batch.clear()
    conn.executemany(sql, batch)
    conn.execute("COMMIT")
    conn.close()


async def fill_postgres(dsn: str, n: int, now: datetime) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.copy_records_to_table("access_log", records=rows(n, now), columns=COLUMNS)
        await conn.execute("ANALYZE access_log")  # as autovacuum would after a while
    finally:
        await conn.close()


async def run_cost(engine: Any, n: int) -> list[float]:
    """Each run's two access-log writes, as `run` makes them."""
    log = SqlRunLog(engine)
    times = []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            r = RunRecord(model="m7", version="1", server="local", os_user="bench")
            await log.start(r)
            r.status, r.exit_code, r.finished_at = RunStatus.SUCCEEDED, 0, utcnow()
            await log.update(r)
            times.append(time.perf_counter() - t0)
    finally:
        await log.close()
    return times


async def migrated(url: str, revision: str) -> Any:
    engine = create_engine(url)
    chain = _chain()
    await upgrade(engine, steps=chain.index(revision) + 1)
    return engine


async def bench(url: str, dsn: str, empty_url: str, args: argparse.Namespace) -> None:
    now = utcnow()
    engine = await migrated(url, args.revision)
    t0 = time.perf_counter()
    if engine.dialect.name == "postgresql":
        await fill_postgres(dsn, args.rows, now)
    else:
        await fill_sqlite(Path(dsn), args.rows, now)
    print(f"  filled {args.rows:,} rows in {time.perf_counter() - t0:.1f} s "
          f"(schema {args.revision})", flush=True)
    ctx = ServiceContext(uow=make_uow_factory(engine), executors=FakeRegistry(FakeExecutor()),
                         allow_edit=True, actor="bench")
    raw = Raw(engine, dsn)
    await raw.open()
    day = now - timedelta(days=1)
    try:
        n = args.n
        # The raw side gets its SQL ready-made: only the database's work and the driver's.
        model_sql = [raw.sql(page_statement(f"m{k % MODELS}", None, None, 51)) for k in range(n + 1)]
        by_model = await timed(n, lambda k: list_run_page(ctx, model=f"m{k % MODELS}", limit=50))
        raw_model = await timed(n, lambda k: raw.fetch(model_sql[k]))
        line("runs --model M --limit 50", by_model, raw_model, 20)
        failed_sql = raw.sql(page_statement(None, RunStatus.FAILED, day, 21))
        failed = await timed(n, lambda k: list_run_page(ctx, status="failed", since=day, limit=20))
        raw_failed = await timed(n, lambda k: raw.fetch(failed_sql))
        line("runs --status failed --since 1d", failed, raw_failed, 50)
        newest = await timed(n, lambda k: list_run_page(ctx, limit=20))
        line("runs (the newest 20)", newest)
        depth = args.rows // MODELS // 2
        deep = (await list_run_page(ctx, model="m3", limit=1, page=depth)).records[0].id
        keyset = await timed(n, lambda k: list_run_page(ctx, model="m3", limit=50, before=str(deep)))
        deep_sql = raw.sql(page_statement("m3", None, None, 51, deep))
        raw_keyset = await timed(n, lambda k: raw.fetch(deep_sql))
        line(f"runs --model M --before ID ({depth:,} runs deep)", keyset, raw_keyset, 20)
        offset = await timed(max(5, n // 5), lambda k: list_run_page(ctx, model="m3", limit=50, page=100))
        line("runs --model M --page 100 (an offset)", offset, None, None, "(--before pages at any depth)")
        print(f"  plan, --model: {await raw.plan(page_statement('m5', None, None, 51))}")
        print(f"  plan, --status --since: {await raw.plan(page_statement(None, RunStatus.FAILED, day, 21))}")

        empty = await migrated(empty_url, args.revision)
        await run_cost(empty, 200)
        on_empty = median_ms(await run_cost(empty, args.runs))
        await empty.dispose()
        await run_cost(engine, 200)
        on_full = median_ms(await run_cost(engine, args.runs))
        line(f"a run's access-log writes, {args.rows:,} rows", on_full, on_empty, None,
             "(raw: the same on an empty log)")
        if not args.no_prune:
            await prune_beside_a_shell(ctx, engine, now)
    finally:
        await raw.close()
        await engine.dispose()


async def prune_beside_a_shell(ctx: ServiceContext, engine: Any, now: datetime) -> None:
    waits: list[float] = []
    pruning = True

    async def shell() -> None:
        log = SqlRunLog(engine)
        try:
            while pruning:
                t0 = time.perf_counter()
                r = RunRecord(model="m1", version="1", server="local", os_user="bench")
                await log.start(r)
                r.status, r.finished_at = RunStatus.SUCCEEDED, utcnow()
                await log.update(r)
                waits.append(time.perf_counter() - t0)
                await asyncio.sleep(0.005)
        finally:
            await log.close()

    writer = asyncio.ensure_future(shell())
    t0 = time.perf_counter()
    done = await prune_runs(ctx, now - timedelta(days=80))
    took = time.perf_counter() - t0
    pruning = False
    await writer
    waits.sort()
    line(f"runs prune --before 80d ({done.count:,} rows)", took * 1000, None, None,
         f"({done.count / took:,.0f} rows/s)")
    print(f"  a shell's run writes meanwhile: {len(waits)} runs, median "
          f"{median_ms(waits):.2f} ms, p99 {waits[int(len(waits) * 0.99)] * 1000:.1f} ms, "
          f"longest {waits[-1] * 1000:.1f} ms")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--n", type=int, default=50, help="queries per listing")
    parser.add_argument("--runs", type=int, default=1000, help="runs per write measurement")
    parser.add_argument("--only", default="sqlite,postgres")
    parser.add_argument("--revision", default="0010", help="the schema to build (0007: before)")
    parser.add_argument("--no-prune", action="store_true")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    if "sqlite" in parts:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "scale.db"
            print(f"SQLite ({path})", flush=True)
            await bench(f"sqlite+aiosqlite:///{path}", str(path),
                        f"sqlite+aiosqlite:///{Path(tmp) / 'empty.db'}", args)
    if "postgres" not in parts:
        return
    try:
        import asyncpg

        admin = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres", timeout=3)
    except Exception as err:  # noqa: BLE001 - report and go on without PostgreSQL
        print(f"PostgreSQL: skipped ({err})")
        return
    db = f"mer_scale_{uuid.uuid4().hex[:8]}"
    await admin.execute(f'CREATE DATABASE "{db}"')
    await admin.execute(f'CREATE DATABASE "{db}_empty"')
    try:
        print(f"PostgreSQL (127.0.0.1:5432/{db})", flush=True)
        base = "postgresql+asyncpg://postgres@127.0.0.1:5432/"
        await bench(base + db, f"postgresql://postgres@127.0.0.1:5432/{db}", base + db + "_empty",
                    args)
    finally:
        for name in (db, f"{db}_empty"):
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
