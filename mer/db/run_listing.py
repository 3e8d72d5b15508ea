"""A page of the access log, newest first, read from an index whatever the log's size.

Pages are keyset pages: the order is (started_at desc, id desc), a total order even
when runs start in the same microsecond, and the page after run X holds the rows that
come after X's (started_at, id) in it, so no row is skipped or shown twice while runs
are added. With a filter on the model or the status (and --since), the composite
indexes of migration 0008 ((model|status, started_at, id)) hand the rows over in this
order: a page reads ``limit`` index entries, not the log.

A listing never reads a run's output (stdout, stderr) or its snapshot: at a million
rows those columns are most of the table, and a list shows neither.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast
from uuid import UUID

from sqlalchemy import Select, Table, literal, null, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from mer.db.orm import RunRow
from mer.domain import RunStatus

__all__ = ["LIST_COLUMNS", "exists", "page_statement"]

# NOTE: typed as any FromClause (a mapped class may map a join); this one is a table.
_RUNS = cast(Table, RunRow.__table__)
_UNREAD = ("stdout", "stderr", "snapshot")
# The row as the repository maps it, with the unread columns standing in empty.
LIST_COLUMNS: list[Any] = [
    c if c.name not in _UNREAD
    else (literal("").label(c.name) if c.name != "snapshot" else null().label(c.name))
    for c in _RUNS.columns
]


async def exists(session: AsyncSession, run_id: UUID) -> bool:
    return (await session.scalar(select(_RUNS.c.id).where(_RUNS.c.id == run_id))) is not None


def page_statement(model: str | None, status: RunStatus | None, since: datetime | None,
                   limit: int, after: UUID | None = None, offset: int = 0,
                   batch_id: UUID | None = None) -> Select[Any]:
    """The rows of one page: newest first, after run ``after`` when given (none when
    there is no such run), then ``offset`` rows skipped."""
    c = _RUNS.c
    stmt = select(*LIST_COLUMNS).order_by(c.started_at.desc(), c.id.desc()).limit(limit)
    if batch_id is not None:  # a batch's runs are few: its own index, then a sort
        stmt = stmt.where(c.batch_id == batch_id)
    if model is not None:
        stmt = stmt.where(c.model == model)
    if status is not None:
        stmt = stmt.where(c.status == str(status))
    if since is not None:
        # NOTE: in UTC: SQLite compares the stored text, which is UTC without a zone.
        stmt = stmt.where(c.started_at >= since.astimezone(UTC))
    if after is not None:
        # The run's start time as a subquery, evaluated once (no round trip of its own).
        # Spelled out rather than as a row value: `started_at <= t` is an index range on
        # both dialects; the rest filters the few rows that share that instant.
        at = select(c.started_at).where(c.id == after).scalar_subquery()
        stmt = stmt.where(c.started_at <= at, or_(c.started_at < at, c.id < after))
    if offset:
        stmt = stmt.offset(offset)
    return stmt
