"""A detached run's row (`run --detach`) on SQLite and the real PostgreSQL: written
``queued``, moved to ``running`` and to its ending by whichever shell looks first, and
ended once: a second ending (another shell, a stale look) changes nothing."""

from __future__ import annotations

import copy

from mer.domain import RunRecord, RunStatus, utcnow


async def test_a_queued_row_moves_on_and_ends_once(uow_factory) -> None:
    record = RunRecord(model="m", version="1", server="hpc", os_user="t", status=RunStatus.QUEUED)
    async with uow_factory() as uow:
        await uow.runs.start(record)
        await uow.commit()

    async def write(r: RunRecord) -> bool:
        async with uow_factory() as uow:
            done = await uow.runs.finish(r)
            await uow.commit()
        return bool(done)

    record.job_id = "42"
    assert await write(record)  # queued, with its job id
    stale = copy.deepcopy(record)
    record.status = RunStatus.RUNNING
    assert await write(record)
    first, second = copy.deepcopy(record), copy.deepcopy(record)
    first.status, first.exit_code, first.finished_at, first.stdout = RunStatus.SUCCEEDED, 0, utcnow(), "one"
    second.status, second.exit_code, second.finished_at = RunStatus.FAILED, 1, utcnow()
    assert await write(first)
    assert not await write(second)  # another shell's ending comes second: dropped
    stale.status = RunStatus.RUNNING
    assert not await write(stale)  # a stale look cannot reopen it
    async with uow_factory() as uow:
        stored = await uow.runs.get(record.id)
    assert (stored.status, stored.exit_code, stored.stdout, stored.job_id) == (
        RunStatus.SUCCEEDED, 0, "one", "42")
