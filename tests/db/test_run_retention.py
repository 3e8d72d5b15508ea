"""`runs prune` on SQLite and the real PostgreSQL: what goes (ended runs before the cutoff,
oldest first; with keep_failed only successes), what stays (running and queued runs,
newer runs), one audit entry that always agrees with what went, and batches that each
commit, so other writers get the database between them."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from typing import Any

import pytest

from mer.domain import RunRecord, RunStatus, utcnow
from mer.errors import EditNotAllowed
from mer.services.context import ServiceContext
from mer.services.retention import count_prunable_runs, prune_runs
from tests.fakes import FakeExecutor, FakeRegistry, FakeStore, FakeUnitOfWork
from tests.fixtures_pg import sqlite_path

NOW = utcnow()
CUTOFF = NOW - timedelta(days=30)
OLD = [RunStatus.SUCCEEDED] * 5 + [RunStatus.FAILED, RunStatus.TIMEOUT, RunStatus.CANCELLED,
                                   RunStatus.LOST, RunStatus.RUNNING, RunStatus.QUEUED]


def _ctx(uow_factory: Any, allow_edit: bool = True) -> ServiceContext:
    return ServiceContext(uow=uow_factory, executors=FakeRegistry(FakeExecutor()),
                          allow_edit=allow_edit, actor="ann")


async def _log(uow_factory: Any) -> dict[str, list[RunRecord]]:
    """Old runs of every status (one minute apart), and two recent ones."""
    old = [RunRecord(model="m", version="1", server="local", os_user="t", status=st,
                     started_at=CUTOFF - timedelta(minutes=i + 1))
           for i, st in enumerate(OLD)]
    recent = [RunRecord(model="m", version="1", server="local", os_user="t",
                        status=RunStatus.SUCCEEDED, started_at=NOW - timedelta(days=d))
              for d in (1, 29)]
    async with uow_factory() as uow:
        for r in old + recent:
            await uow.runs.start(r)
        await uow.commit()
    return {"old": old, "recent": recent}


async def _left(uow_factory: Any) -> set[Any]:
    async with uow_factory() as uow:
        return {r.id for r in await uow.runs.query(limit=1000)}


async def test_prune_keeps_running_queued_and_newer_runs_and_audits_once(uow_factory) -> None:
    log = await _log(uow_factory)
    ctx = _ctx(uow_factory)
    assert (await count_prunable_runs(ctx, CUTOFF)).count == 9
    assert (await count_prunable_runs(ctx, CUTOFF, keep_failed=True)).count == 5
    assert len(await _left(uow_factory)) == 13  # counting deleted nothing

    seen: list[int] = []

    async def batch_done(deleted: int) -> None:
        seen.append(deleted)

    kept = await prune_runs(ctx, CUTOFF, keep_failed=True, batch=2, on_batch=batch_done)
    assert kept.count == 5 and seen == [2, 4, 5]
    assert await _left(uow_factory) == {r.id for r in log["old"][5:] + log["recent"]}
    done = await prune_runs(ctx, CUTOFF, batch=3)
    assert done.count == 4
    unended = [r.id for r in log["old"] if r.status in (RunStatus.RUNNING, RunStatus.QUEUED)]
    assert await _left(uow_factory) == {*unended, *(r.id for r in log["recent"])}

    async with uow_factory() as uow:
        entries = await uow.audit.query()
    assert [(e.action, e.actor, e.after) for e in entries] == [
        ("runs.prune", "ann", {"deleted": 4, "keep_failed": False, "complete": True}),
        ("runs.prune", "ann", {"deleted": 5, "keep_failed": True, "complete": True}),
    ]
    assert entries[0].target == f"runs before {CUTOFF:%Y-%m-%dT%H:%M:%SZ}"
    assert (await prune_runs(ctx, CUTOFF)).count == 0
    async with uow_factory() as uow:
        assert len(await uow.audit.query()) == 2  # nothing pruned: no entry


async def test_each_batch_commits_so_other_writers_get_in_between_and_a_stop_loses_nothing(
        db_url: str, uow_factory) -> None:
    await _log(uow_factory)
    ctx = _ctx(uow_factory)
    path = sqlite_path(db_url)
    written: list[RunRecord] = []

    async def another_shell_runs_then_ctrl_c(deleted: int) -> None:
        if path is not None:
            # No busy timeout: this fails at once if the prune still held the write lock.
            conn = sqlite3.connect(path, timeout=0, isolation_level=None)
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("ROLLBACK")
            finally:
                conn.close()
        r = RunRecord(model="other", version="1", server="local", os_user="t")
        async with uow_factory() as uow:
            await uow.runs.start(r)
            await uow.commit()
        written.append(r)
        if deleted == 8:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await prune_runs(ctx, CUTOFF, batch=4, on_batch=another_shell_runs_then_ctrl_c)
    left = await _left(uow_factory)
    assert len(left) == 13 - 8 + 2 and {r.id for r in written} <= left
    async with uow_factory() as uow:
        [entry] = await uow.audit.query()
    assert entry.after == {"deleted": 8, "keep_failed": False, "complete": False}
    assert (await prune_runs(ctx, CUTOFF, batch=4)).count == 1  # a second prune ends it


async def test_prune_needs_allow_edit() -> None:
    store = FakeStore()
    with pytest.raises(EditNotAllowed):
        await prune_runs(_ctx(lambda: FakeUnitOfWork(store), allow_edit=False), CUTOFF)
