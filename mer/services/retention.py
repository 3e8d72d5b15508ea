"""Retention of the access log: `runs prune --before 30d [--keep-failed] [--dry-run]`.

A prune deletes the ended runs that started before a cutoff, oldest first, in batches,
each its own short transaction, and rests between batches as long as the last one took,
so the run-log writes of shells that are running models get the database between
batches (SQLite has a single writer). A batch is sized to take about ``BATCH_TIME``
(at most ``PRUNE_BATCH`` rows): on SQLite a row costs a page write in each of the log's
indexes, and 5,000 rows took ~1 s on a loaded machine, a second a running shell's run
would wait. A run still running or queued is never deleted; ``keep_failed`` keeps every
run that did not succeed.

One audit entry tells the whole prune: it is written in the first batch's transaction
and rewritten in each later one with the count so far, so whatever stops a prune
(Ctrl-C, a lost database) the log and its audit entry agree on what went;
``"complete": true`` once nothing matched is left.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from mer.domain import AuditEntry, RunStatus, utcnow
from mer.errors import UsageError
from mer.services.context import ServiceContext, require_edit

__all__ = ["PRUNE_BATCH", "PruneResult", "count_prunable_runs", "prunable_statuses",
           "prune_runs"]

PRUNE_BATCH = 5000  # the most rows one transaction deletes
FIRST_BATCH = 500
BATCH_TIME = 0.05  # seconds a batch should take: about the longest another writer waits
MAX_REST = 0.1  # seconds: the longest pause between two batches


@dataclass(frozen=True)
class PruneResult:
    cutoff: datetime
    keep_failed: bool
    count: int  # deleted, or (dry run) that would be deleted
    dry_run: bool = False


def prunable_statuses(keep_failed: bool) -> frozenset[RunStatus]:
    """The statuses a prune may delete: every ending, or only success."""
    if keep_failed:
        return frozenset({RunStatus.SUCCEEDED})
    return frozenset(RunStatus) - {RunStatus.RUNNING, RunStatus.QUEUED}


def _check_cutoff(cutoff: datetime) -> datetime:
    if cutoff > utcnow():
        raise UsageError(f"--before {cutoff.isoformat(timespec='seconds')} is in the future; "
                         f"give a past time, e.g. 30d or 2026-01-31")
    return cutoff.astimezone(UTC)


async def count_prunable_runs(ctx: ServiceContext, cutoff: datetime,
                              keep_failed: bool = False) -> PruneResult:
    """What a prune would delete (a dry run: nothing is). Raises UsageError, StorageError."""
    cutoff = _check_cutoff(cutoff)
    async with ctx.uow() as uow:
        count = await uow.runs.count_prunable(cutoff, prunable_statuses(keep_failed))
    return PruneResult(cutoff=cutoff, keep_failed=keep_failed, count=count, dry_run=True)


async def prune_runs(ctx: ServiceContext, cutoff: datetime, keep_failed: bool = False,
                     batch: int | None = None,
                     on_batch: Callable[[int], Awaitable[None]] | None = None) -> PruneResult:
    """Delete the ended runs started before ``cutoff`` (see the module docstring), in
    batches of ``batch`` rows (None: sized by time); ``on_batch(deleted so far)`` after
    each batch's commit. Raises EditNotAllowed, UsageError, StorageError."""
    require_edit(ctx)
    cutoff = _check_cutoff(cutoff)
    statuses = prunable_statuses(keep_failed)
    entry = AuditEntry(actor=ctx.actor, action="runs.prune",
                       target=f"runs before {cutoff:%Y-%m-%dT%H:%M:%SZ}")
    deleted, size = 0, batch or FIRST_BATCH
    while True:
        t0 = time.perf_counter()
        async with ctx.uow() as uow:
            gone = await uow.runs.delete_prunable(cutoff, statuses, size)
            if gone == 0 and deleted == 0:
                break  # nothing to prune: no edit, no audit entry
            deleted += gone
            await uow.audit.replace(replace(entry, after={
                "deleted": deleted, "keep_failed": keep_failed, "complete": gone < size}))
            await uow.commit()
        took = time.perf_counter() - t0
        if on_batch is not None:
            await on_batch(deleted)
        if gone < size:
            break
        if batch is None:
            # Toward BATCH_TIME, growing at most twofold: one overshoot is one long wait.
            size = max(50, min(PRUNE_BATCH, 2 * size, int(size * BATCH_TIME / max(took, 0.001))))
        await asyncio.sleep(min(took, MAX_REST))
    return PruneResult(cutoff=cutoff, keep_failed=keep_failed, count=deleted)
