"""Retention of the access log: the rows a prune may delete, counted, and deleted a
batch at a time.

A batch is the oldest ``limit`` matching rows (by the (started_at, id) index), deleted
by id in the caller's transaction: a short transaction, so the writers of running
shells wait at most one batch (SQLite has one writer at a time; PostgreSQL locks only
the deleted rows). Which statuses may go is the caller's policy (mer/services/retention.py).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mer.db.orm import RunRow
from mer.db.repository import _matched
from mer.domain import RunStatus

__all__ = ["count_prunable", "delete_prunable"]

# NOTE: typed as any FromClause (a mapped class may map a join); this one is a table.
_RUNS = cast(Table, RunRow.__table__)


def _prunable(cutoff: datetime, statuses: Collection[RunStatus]) -> list[ColumnElement[Any]]:
    c = _RUNS.c
    # NOTE: in UTC: SQLite compares the stored text, which is UTC without a zone.
    return [c.started_at < cutoff.astimezone(UTC), c.status.in_([str(s) for s in statuses])]


async def count_prunable(session: AsyncSession, cutoff: datetime,
                         statuses: Collection[RunStatus]) -> int:
    stmt = select(func.count()).select_from(_RUNS).where(*_prunable(cutoff, statuses))
    return int(await session.scalar(stmt) or 0)


async def delete_prunable(session: AsyncSession, cutoff: datetime,
                          statuses: Collection[RunStatus], limit: int) -> int:
    c = _RUNS.c
    oldest = (select(c.id).where(*_prunable(cutoff, statuses))
              .order_by(c.started_at, c.id).limit(limit))
    return await _matched(session, delete(_RUNS).where(c.id.in_(oldest)))
