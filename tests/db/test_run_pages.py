"""The access log listed a page at a time, on SQLite and the real PostgreSQL: following
`--before` pages lists every matching run exactly once, newest first, also when runs
share a start time or are added while paging; each listing is an index range read in
its order (the query plan), and a list never reads a run's output.

Read-only tests share one log of 3,000 runs per dialect (made once per module)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import create_async_engine

from mer.db.engine import create_engine
from mer.db.orm import Base, RunRow
from mer.db.run_listing import page_statement
from mer.db.run_records import SqlRunRepository
from mer.db.uow import make_uow_factory
from mer.domain import RunRecord, RunStatus, utcnow
from mer.errors import RunNotFound
from mer.services.context import ServiceContext
from mer.services.run_pages import list_run_page
from tests.fakes import FakeExecutor, FakeRegistry
from tests.fixtures_pg import migrate

NOW = utcnow()
STATUSES = [RunStatus.SUCCEEDED] * 15 + [RunStatus.FAILED] * 2 + [RunStatus.TIMEOUT, RunStatus.RUNNING,
                                             RunStatus.CANCELLED]


def _record(i: int, started_at: datetime | None = None) -> RunRecord:
    # Four runs share each instant: only the id orders them.
    return RunRecord(model=f"m{i % 3}", version="1", server="local", os_user="t",
                     status=STATUSES[(i // 3) % 20], started_at=started_at or NOW - timedelta(seconds=i // 4),
                     stdout="kept output " * 10, snapshot={"config": {"timeout": 5}})


@dataclass
class Log:
    url: str
    ctx: ServiceContext
    engine: Any
    records: list[RunRecord]

    def expected(self, model: str | None = None, status: RunStatus | None = None,
                 since: datetime | None = None) -> list[uuid.UUID]:
        rows = [r for r in self.records if (model is None or r.model == model)
                and (status is None or r.status == status) and (since is None or r.started_at >= since)]
        return [r.id for r in sorted(rows, key=lambda r: (r.started_at, r.id), reverse=True)]


async def _fill(engine: Any, records: list[RunRecord]) -> None:
    async with engine.begin() as conn:
        await conn.execute(insert(RunRow.__table__),
                           [SqlRunRepository.start_values(r) for r in records])
        if engine.dialect.name == "postgresql":
            await conn.execute(text("ANALYZE access_log"))  # the planner sees the real table


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def log_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('pages') / 'mer.db'}"
    return str(request.getfixturevalue("pg_url"))  # skips (or fails under CI) without it


@pytest.fixture(scope="module")
async def log(log_url: str) -> AsyncIterator[Log]:
    if log_url.startswith("sqlite"):
        await migrate(log_url)
        engine = create_engine(log_url)
    else:
        # A schema of its own in the session's database (which other tests empty
        # meanwhile: they drop only `public`; the database goes at the end with it all).
        schema = f"pages_{uuid.uuid4().hex[:10]}"
        engine = create_async_engine(
            log_url, connect_args={"server_settings": {"search_path": schema}})
        async with engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            # The migrated schema (tests/db/test_migrations.py: no drift), made faster.
            await conn.run_sync(Base.metadata.create_all)
    records = [_record(i) for i in range(3000)]
    await _fill(engine, records)
    ctx = ServiceContext(uow=make_uow_factory(engine), executors=FakeRegistry(FakeExecutor()))
    yield Log(log_url, ctx, engine, records)
    await engine.dispose()


async def _follow(ctx: ServiceContext, limit: int, **filters: Any) -> list[uuid.UUID]:
    """Every page, each asked for by the last run of the one before."""
    seen: list[uuid.UUID] = []
    before = None
    while True:
        page = await list_run_page(ctx, limit=limit, before=before, **filters)
        seen += [r.id for r in page.records]
        if not page.more:
            return seen
        before = str(page.records[-1].id)


@pytest.mark.parametrize("filters", [
    {"model": "m1"},
    {"status": "failed", "since": NOW - timedelta(seconds=600)},
    {"model": "m2", "status": "succeeded"},
])
async def test_following_the_pages_lists_each_run_once_newest_first(log: Log, filters: dict) -> None:
    st = RunStatus(filters["status"]) if "status" in filters else None
    want = log.expected(filters.get("model"), st, filters.get("since"))
    assert len(want) > 200
    assert await _follow(log.ctx, 50, **filters) == want


async def test_page_n_is_an_offset_of_whole_pages(log: Log) -> None:
    want = log.expected("m1")
    assert len(want) == 1000
    page = await list_run_page(log.ctx, model="m1", limit=100, page=3)
    assert [r.id for r in page.records] == want[200:300] and page.more
    last = await list_run_page(log.ctx, model="m1", limit=100, page=10)
    assert [r.id for r in last.records] == want[900:] and not last.more


async def test_before_takes_a_prefix_and_names_a_missing_run(log: Log) -> None:
    want = log.expected("m2")
    page = await list_run_page(log.ctx, model="m2", limit=3, before=str(want[4])[:13])
    assert [r.id for r in page.records] == want[5:8]
    with pytest.raises(RunNotFound):
        await list_run_page(log.ctx, before=str(uuid.UUID(int=0)))


async def test_a_prefix_finds_its_run_by_a_range_of_ids(log: Log) -> None:
    # A prefix is a range of the primary key (not a scan of the log): check the ends.
    ids = sorted(r.id for r in log.records)
    async with log.ctx.uow() as uow:
        for run_id in (ids[0], ids[1], ids[-1], ids[1500]):
            for prefix in (str(run_id)[:9], str(run_id)[:13], run_id.hex[:20], run_id.hex[:31]):
                found = await uow.runs.get(prefix)
                assert found is not None and found.id == run_id, prefix
        assert await uow.runs.get("ffffffff-ffff") is None or ids[-1].hex.startswith("ffffffffffff")


async def test_a_list_does_not_read_the_output(log: Log) -> None:
    page = await list_run_page(log.ctx, model="m0", limit=5)
    assert [(r.stdout, r.snapshot) for r in page.records] == [("", None)] * 5
    assert all(r.weight_revisions == {} and r.started_at.tzinfo for r in page.records)
    async with log.ctx.uow() as uow:
        whole = await uow.runs.get(page.records[0].id)
    assert whole is not None and whole.stdout.startswith("kept output") and whole.snapshot


async def _plan(engine: Any, stmt: Any) -> str:
    sql = str(stmt.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
    explain = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    async with engine.connect() as conn:
        rows = (await conn.exec_driver_sql(explain + sql)).fetchall()
    return "\n".join(str(r[-1]) for r in rows)


@pytest.mark.parametrize(("filters", "index"), [
    ({"model": "m1"}, "ix_access_log_model_started_at"),
    ({"status": RunStatus.FAILED, "since": NOW - timedelta(days=1)}, "ix_access_log_status_started_at"),
    ({"model": "m1", "after": 1501}, "ix_access_log_model_started_at"),
    ({}, "ix_access_log_started_at_id"),
])
async def test_each_listing_reads_an_index_in_its_order(log: Log, filters: dict, index: str) -> None:
    after = log.records[filters["after"]].id if "after" in filters else None
    stmt = page_statement(filters.get("model"), filters.get("status"), filters.get("since"), 51,
                          after)
    plan = await _plan(log.engine, stmt)
    # No sort step and no table scan: an index hands the rows over newest first.
    assert "TEMP B-TREE" not in plan and "Sort" not in plan and "Seq Scan" not in plan, plan
    if log.engine.dialect.name == "sqlite":
        assert re.search(rf"USING INDEX {index}\b", plan), plan
    else:
        # PostgreSQL weighs the indexes by its statistics: at this size a filter that
        # matches a third of the log may as well read started_at's (also in order).
        assert "Index Scan Backward using ix_access_log_" in plan, plan


async def test_runs_added_while_paging_are_not_shown_twice_or_skip_one(uow_factory) -> None:
    ctx = ServiceContext(uow=uow_factory, executors=FakeRegistry(FakeExecutor()))
    first = [_record(0, NOW - timedelta(seconds=j // 3)) for j in range(12)]  # three an instant
    async with uow_factory() as uow:
        for r in first:
            await uow.runs.start(r)
        await uow.commit()
    page = await list_run_page(ctx, model="m0", limit=5)
    seen = [r.id for r in page.records]
    async with uow_factory() as uow:  # newer runs, one at the instant of the newest
        for r in (_record(0, NOW + timedelta(seconds=1)), _record(0, first[0].started_at)):
            await uow.runs.start(r)
        await uow.commit()
    while page.more:
        page = await list_run_page(ctx, model="m0", limit=5, before=str(page.records[-1].id))
        seen += [r.id for r in page.records]
    ordered = [r.id for r in sorted(first, key=lambda r: (r.started_at, r.id), reverse=True)]
    assert seen[:5] == ordered[:5]
    assert sorted(seen) == sorted(ordered) and len(seen) == len(set(seen))
