"""The access log's SQL: the one write path of a run's record, and its reads.

Every run writes its row before the model starts and completes it when the model ends;
mer/db/run_log.py sends these same statements straight to the driver on the hot path,
and the repository below sends them through a unit of work (fakes, journal replay,
reaping). What makes the writes safe to repeat:

- the row's id is made by mer, so a start retried after a lost reply finds its own row;
- a final write only changes a row that is still ``running`` (or ``queued``: a detached
  run, which any shell may finish), so a journal replayed twice, a final write racing
  the reaper, or two shells finishing one detached run never write a second ending.

Every string is stored as valid UTF-8 without NUL, on both dialects (``storable``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Table, bindparam, insert, literal_column, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from mer.db import run_retention
from mer.db.engine import map_errors
from mer.db.orm import RunRow
from mer.db.repository import _aware, _matched
from mer.db.run_listing import exists as run_exists
from mer.db.run_listing import page_statement
from mer.domain import Artifact, RunKind, RunRecord, RunStatus
from mer.errors import RunNotFound, UsageError

__all__ = ["RUN_CLAIM", "RUN_END", "RUN_FINISH", "RUN_INSERT", "SqlRunRepository", "replay_record",
           "row_exists", "storable", "storable_encoder", "storable_json"]

# NUL (PostgreSQL's text and JSONB refuse it) and lone surrogates (Python's fsdecode of
# a non-UTF-8 file name makes them; PostgreSQL refuses them, SQLite keeps them and they
# come back as text no UTF-8 writer can print).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str | None) -> str | None:
    """``text`` with NUL and lone surrogates replaced by U+FFFD."""
    if not text or (text.isascii() and "\x00" not in text):
        return text
    return _UNSTORABLE.sub("\ufffd", text)


# In JSON with ASCII escapes, the only trace of NUL or of a surrogate (lone, or half of a
# pair: then the slow path finds nothing to replace) is one of these escapes.
_UNSTORABLE_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


def storable_json(value: Any) -> Any:
    """The same for every string and key of a JSON document (a model's result, a run's
    snapshot)."""
    if isinstance(value, (dict, list)):
        # NOTE: every run writes its snapshot twice; encoding it in C and looking for an
        # escape costs a third of walking it in Python, and the walk is only needed when
        # one is found.
        try:
            if not _UNSTORABLE_ESCAPE.search(json.dumps(value)):
                return value
        except (TypeError, ValueError):
            pass  # not plain JSON: the walk below decides
    return _storable_walk(value)


def storable_encoder(encode: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``encode`` (a JSON column's bind processor) storing what ``storable_json`` stores:
    the value is encoded once, and walked only when the text shows an escape to clean."""

    # A run's start writes no result, no artifacts and often no weights: those empty
    # documents are encoded once.
    nothing: tuple[Any, ...] = (None, {}, [])
    empties = {type(v): encode(v) for v in nothing}

    def storable_encode(value: Any) -> Any:
        if not value and type(value) in empties:
            return empties[type(value)]
        text = encode(value)
        if isinstance(text, str) and _UNSTORABLE_ESCAPE.search(text):
            return encode(_storable_walk(value))
        return text

    return storable_encode


def _storable_walk(value: Any) -> Any:
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, list):
        return [_storable_walk(v) for v in value]
    if isinstance(value, dict):
        return {storable(k): _storable_walk(v) for k, v in value.items()}
    return value


_RUNS = RunRow.__table__
assert isinstance(_RUNS, Table)  # typed as any FromClause: a mapped class may map a join
# A literal, not a bound value: the run log binds only the values a record carries.
_STILL_RUNNING = _RUNS.c.status.in_([literal_column(f"'{RunStatus.RUNNING}'"),
                                     literal_column(f"'{RunStatus.QUEUED}'")])
# Prebuilt Core statements: two rows per run is the hot path of every `run`, and
# building ORM-enabled statements per call cost more than the database work itself.
RUN_INSERT = insert(_RUNS)
# What the run's plan stamps on its record (mer/services/runs.py ``_stamp``): it changes
# only together with the snapshot, when the plan is read again.
_STAMP = ("model_id", "version", "server", "weight_revisions")
_ENDING = ("status", "exit_code", "finished_at", "bytes_in", "bytes_out", "stdout", "stderr",
           "result", "error", "artifacts", "job_id")
RUN_FINISH = (
    update(_RUNS)
    .where(_RUNS.c.id == bindparam("run_id"), _STILL_RUNNING)
    .values({c: bindparam(c) for c in (*_STAMP, *_ENDING, "snapshot")})
)
# The same, leaving the stamp and the snapshot the start wrote: the run log's usual
# ending (a snapshot is ~1 kB of JSON, encoded and written again for nothing otherwise).
RUN_END = (
    update(_RUNS)
    .where(_RUNS.c.id == bindparam("run_id"), _STILL_RUNNING)
    .values({c: bindparam(c) for c in _ENDING})
)
# The model's process group, known once it started: what a reaper kills if mer dies.
RUN_CLAIM = (
    update(_RUNS)
    .where(_RUNS.c.id == bindparam("run_id"), _STILL_RUNNING)
    .values(process_group=bindparam("process_group"))
)


class SqlRunRepository:
    COLUMNS = [c.name for c in _RUNS.columns]

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @staticmethod
    def _values(r: RunRecord, snapshot: bool = True, clean: Callable[[Any], Any] = storable_json,
                ) -> dict[str, Any]:
        """A record's columns; ``clean`` makes a JSON document storable (the run log's
        statements clean it as they encode it, and pass the identity)."""
        values = dict(
            model_id=r.model_id, version=r.version, server=r.server,
            status=str(r.status), exit_code=r.exit_code, finished_at=r.finished_at,
            bytes_in=r.bytes_in, bytes_out=r.bytes_out, stdout=storable(r.stdout),
            stderr=storable(r.stderr), result=clean(r.result), error=storable(r.error),
            weight_revisions=dict(r.weight_revisions),
            artifacts=[clean(a.image()) for a in r.artifacts] or None,
            job_id=r.job_id,
        )
        if snapshot:
            values["snapshot"] = clean(r.snapshot)
        return values

    @classmethod
    def start_values(cls, record: RunRecord, clean: Callable[[Any], Any] = storable_json,
                     ) -> dict[str, Any]:
        return dict(
            id=record.id, model=record.model, os_user=record.os_user, kind=str(record.kind),
            started_at=record.started_at, owner_host=record.owner_host,
            owner_pid=record.owner_pid, owner_start=record.owner_start,
            process_group=record.process_group, batch_id=record.batch_id,
            parent_id=record.parent_id, alias=record.alias, **cls._values(record, clean=clean),
        )

    @classmethod
    def finish_values(cls, record: RunRecord, snapshot: bool = True,
                      clean: Callable[[Any], Any] = storable_json) -> dict[str, Any]:
        return dict(run_id=record.id, **cls._values(record, snapshot, clean))

    @staticmethod
    def claim_values(record: RunRecord) -> dict[str, Any]:
        return dict(run_id=record.id, process_group=record.process_group)

    async def start(self, record: RunRecord) -> None:
        with map_errors():
            await self.session.execute(RUN_INSERT, self.start_values(record))

    async def finish(self, record: RunRecord) -> bool:
        with map_errors():
            return await _matched(self.session, RUN_FINISH, self.finish_values(record)) > 0

    async def claim(self, record: RunRecord) -> None:
        with map_errors():
            await self.session.execute(RUN_CLAIM, self.claim_values(record))

    @staticmethod
    def _to_domain(row: Any) -> RunRecord:
        """From a RunRow, or a listing's row (mer/db/run_listing.py: the same names)."""
        return RunRecord(
            id=row.id, model_id=row.model_id, model=row.model, version=row.version,
            server=row.server, os_user=row.os_user, kind=RunKind(row.kind),
            weight_revisions=dict(row.weight_revisions or {}), status=RunStatus(row.status),
            exit_code=row.exit_code, started_at=_aware(row.started_at),
            finished_at=_aware(row.finished_at), bytes_in=row.bytes_in,
            bytes_out=row.bytes_out, stdout=storable(row.stdout) or "",
            stderr=storable(row.stderr) or "", result=storable_json(row.result),
            error=storable(row.error), owner_host=row.owner_host, owner_pid=row.owner_pid,
            owner_start=row.owner_start, process_group=row.process_group,
            artifacts=[Artifact(**a) for a in row.artifacts or ()],
            job_id=row.job_id, batch_id=row.batch_id, parent_id=row.parent_id, alias=row.alias,
            snapshot=storable_json(row.snapshot),
        )

    async def get(self, run_id: UUID | str) -> RunRecord | None:
        if isinstance(run_id, UUID):
            stmt = select(RunRow).where(RunRow.id == run_id)
        else:
            prefix = run_id.strip().lower().replace("-", "")
            if not 4 <= len(prefix) <= 32 or not re.fullmatch(r"[0-9a-f]+", prefix):
                raise UsageError(
                    f"run id '{run_id}' is not a run id; give at least 4 hex characters of one"
                )
            if len(prefix) == 32:
                stmt = select(RunRow).where(RunRow.id == UUID(prefix))
            else:
                # The ids a prefix covers are one range of the primary key (uuid order is
                # hex order on both dialects): an index range, not a scan of the log.
                lo, hi = UUID(prefix.ljust(32, "0")), UUID(prefix.ljust(32, "f"))
                stmt = select(RunRow).where(RunRow.id >= lo, RunRow.id <= hi).limit(2)
        with map_errors():
            rows = list(await self.session.scalars(stmt))
        if len(rows) > 1:
            raise UsageError(f"run id '{run_id}' matches several runs; give more characters")
        return self._to_domain(rows[0]) if rows else None

    async def query(
        self,
        model: str | None = None,
        status: RunStatus | None = None,
        since: datetime | None = None,
        limit: int = 50,
        batch_id: UUID | None = None,
        *,
        before: UUID | None = None,
        offset: int = 0,
    ) -> list[RunRecord]:
        with map_errors():
            rows = list(await self.session.execute(
                page_statement(model, status, since, limit, before, offset, batch_id)))
            if not rows and before is not None and not await run_exists(self.session, before):
                raise RunNotFound(str(before))
            return [self._to_domain(r) for r in rows]

    async def count_prunable(self, cutoff: datetime, statuses: Collection[RunStatus]) -> int:
        with map_errors():
            return await run_retention.count_prunable(self.session, cutoff, statuses)

    async def delete_prunable(self, cutoff: datetime, statuses: Collection[RunStatus],
                              limit: int) -> int:
        with map_errors():
            return await run_retention.delete_prunable(self.session, cutoff, statuses, limit)

    async def children(self, parent_id: UUID) -> list[RunRecord]:
        """The runs whose parent is ``parent_id`` (a pipeline run's steps), oldest first."""
        stmt = select(RunRow).where(RunRow.parent_id == parent_id).order_by(RunRow.started_at)
        with map_errors():
            return [self._to_domain(r) for r in await self.session.scalars(stmt)]

    async def batch_ids(self, prefix: str, limit: int = 2) -> list[UUID]:
        """Batch ids that start with ``prefix`` (hex, no dashes), at most ``limit``."""
        # A range on the indexed column, not LIKE on its text: a uuid orders as its hex
        # digits on both dialects, so the ids with this prefix lie between these two.
        low, high = UUID(prefix.ljust(32, "0")), UUID(prefix.ljust(32, "f"))
        stmt = (select(RunRow.batch_id).where(RunRow.batch_id >= low, RunRow.batch_id <= high)
                .distinct().limit(limit))
        with map_errors():
            return [b for b in await self.session.scalars(stmt) if b is not None]

    async def running_on(self, host: str) -> list[RunRecord]:
        """The rows still ``running`` whose owner is a mer on ``host``."""
        stmt = select(RunRow).where(RunRow.status == str(RunStatus.RUNNING),
                                    RunRow.owner_host == host)
        with map_errors():
            return [self._to_domain(r) for r in await self.session.scalars(stmt)]


async def row_exists(engine: AsyncEngine, run_id: UUID) -> bool:
    with map_errors(what="reading the access log"):
        async with engine.connect() as conn:
            return await conn.scalar(select(RunRow.id).where(RunRow.id == run_id)) is not None


async def replay_record(engine: AsyncEngine, record: RunRecord) -> None:
    """Write a journaled final record: complete its row if it is still running, write it
    whole if its start never arrived, leave it if it already has an ending."""
    with map_errors(what="replaying the run journal"):
        async with engine.begin() as conn:
            done = await conn.execute(RUN_FINISH, SqlRunRepository.finish_values(record))
            if done.rowcount == 0 and await conn.scalar(
                    select(RunRow.id).where(RunRow.id == record.id)) is None:
                await conn.execute(RUN_INSERT, SqlRunRepository.start_values(record))
