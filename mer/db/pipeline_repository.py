"""The SQL repository of pipelines (table ``pipelines``, migration 0007).

A pipeline's steps are one JSON document, ``[{"model": "m@live", "map": [["result.y",
"input.x"], ...] | null}, ...]``: a step is meaningless without its place in the list,
so the list is stored, read and replaced whole. The maps are pairs, not an object:
PostgreSQL's JSONB does not keep an object's key order, and the order is the order the
maps are applied in.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from mer.db.engine import map_errors
from mer.db.orm import PipelineRow
from mer.db.repository import _aware, _matched
from mer.domain import Pipeline, PipelineStep, utcnow
from mer.errors import AlreadyExists, PipelineNotFound, StorageError

__all__ = ["SqlPipelineRepository", "steps_document", "steps_from_document"]


def steps_document(steps: list[PipelineStep]) -> list[dict[str, Any]]:
    """The stored form of a pipeline's steps."""
    return [{"model": s.model, "map": [list(m) for m in s.maps] or None} for s in steps]


def steps_from_document(document: list[dict[str, Any]] | None) -> list[PipelineStep]:
    return [PipelineStep(model=str(d["model"]),
                         maps=[(str(src), str(dst)) for src, dst in d.get("map") or ()])
            for d in document or ()]


class SqlPipelineRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @staticmethod
    def _to_domain(row: PipelineRow) -> Pipeline:
        return Pipeline(name=row.name, steps=steps_from_document(row.steps),
                        description=row.description or "", id=row.id,
                        row_version=row.row_version, created_at=_aware(row.created_at),
                        updated_at=_aware(row.updated_at))

    async def list(self) -> list[Pipeline]:
        with map_errors():
            rows = await self.session.scalars(select(PipelineRow).order_by(PipelineRow.name))
            return [self._to_domain(r) for r in rows]

    async def get(self, name: str) -> Pipeline | None:
        with map_errors():
            row = await self.session.scalar(select(PipelineRow).where(PipelineRow.name == name))
        return self._to_domain(row) if row else None

    async def add(self, pipeline: Pipeline) -> Pipeline:
        taken = AlreadyExists(f"pipeline '{pipeline.name}' already exists; see "
                              f"`pipeline show {pipeline.name}`")
        if await self.get(pipeline.name) is not None:
            raise taken
        now = utcnow()
        try:
            with map_errors():
                await self.session.execute(insert(PipelineRow).values(
                    id=pipeline.id, name=pipeline.name, steps=steps_document(pipeline.steps),
                    description=pipeline.description, row_version=1, created_at=now,
                    updated_at=now))
                await self.session.flush()
        except StorageError as err:
            # Another shell added the same name between the read and the insert.
            if isinstance(err.__cause__, IntegrityError):
                raise taken from err
            raise
        stored = await self.get(pipeline.name)
        if stored is None:  # pragma: no cover - the row was inserted just above
            raise PipelineNotFound(pipeline.name)
        return stored

    async def remove(self, name: str) -> None:
        with map_errors():
            matched = await _matched(self.session, delete(PipelineRow).where(PipelineRow.name == name))
        if matched != 1:
            raise PipelineNotFound(name)
