"""The access log listed a page at a time: `runs [--model M] [--status S] [--since T]
[--before ID] [--page N]`.

A page is the ``limit`` runs after run ID (newest first: started_at, then id), so the
next page is asked for by the last run shown, and paging on while runs are added never
skips or repeats one (mer/db/run_listing.py). ``page`` N skips (N - 1) * limit rows
first: handy for the first few pages, while ``before`` costs the same at any depth.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from mer.db.interfaces import UnitOfWork
from mer.domain import RunRecord, RunStatus
from mer.errors import RunNotFound, UsageError
from mer.services.context import ServiceContext

__all__ = ["RunPage", "list_run_page"]


@dataclass(frozen=True)
class RunPage:
    records: list[RunRecord]
    more: bool  # older runs follow: the page before records[-1].id lists them


def _status(status: str | None) -> RunStatus | None:
    try:
        return RunStatus(status) if status else None
    except ValueError:
        raise UsageError(
            f"status '{status}' is not one of {', '.join(s.value for s in RunStatus)}"
        ) from None


def _full_id(run_id: str) -> UUID | None:
    try:
        return UUID(run_id.strip())
    except ValueError:
        return None  # a prefix, or not an id at all: the repository tells which


async def list_run_page(ctx: ServiceContext, model: str | None = None,
                        status: str | None = None, since: datetime | None = None,
                        limit: int = 50, before: str | None = None,
                        page: int = 1, batch_id: UUID | None = None) -> RunPage:
    """One page of runs, newest first. ``before``: a run id (a unique prefix will do,
    the full id is cheaper); only runs after it in that order. Raises UsageError,
    RunNotFound, StorageError."""
    st = _status(status)
    if limit < 1:
        raise UsageError("--limit must be at least 1")
    if page < 1:
        raise UsageError("--page must be at least 1")
    if st is RunStatus.RUNNING:
        from mer.services.reaping import reap_lost_runs

        await reap_lost_runs(ctx)  # what says running must be running
    async with ctx.uow() as uow:
        anchor = None
        if before is not None:
            anchor = _full_id(before)
            if anchor is None:
                found = await uow.runs.get(before)
                if found is None:
                    raise RunNotFound(before)
                anchor = found.id
        # One row more than the page tells whether another page follows.
        rows = await uow.runs.query(model=model, status=st, since=since, limit=limit + 1,
                                    batch_id=batch_id, before=anchor, offset=(page - 1) * limit)
        records = [await _whole(uow, r) for r in rows[:limit]]
    from mer.services.detached import refresh_runs

    records = await refresh_runs(ctx, records)  # detached (Slurm) runs: how they stand now
    return RunPage(records=records, more=len(rows) > limit)


async def _whole(uow: UnitOfWork, record: RunRecord) -> RunRecord:
    """A detached run that may be brought up to date, read whole: its update writes the
    record back, which must not blank the output and snapshot a listing leaves out."""
    if record.job_id is None or record.status not in (RunStatus.QUEUED, RunStatus.RUNNING):
        return record
    return await uow.runs.get(record.id) or record
