"""The SQLAlchemy weight repository: immutable revisions of named vectors, stored as
raw float64 bytes. An append names the revision it read, so two edits from one base
cannot both land (the unique (model, name, revision) key turns the second into a
ConflictError)."""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError

from mer.db.engine import map_errors
from mer.db.orm import WeightRow
from mer.db.repository import _aware, _matched, _Repo
from mer.domain import WeightRevision, to_vector, utcnow, vector_sha256
from mer.errors import ConflictError, StorageError, UsageError

__all__ = ["SqlWeightRepository"]


class SqlWeightRepository(_Repo):
    @staticmethod
    def _to_domain(row: Any, with_values: bool = True) -> WeightRevision:
        values = array("d")
        if with_values:
            values.frombytes(row.data)
        return WeightRevision(
            model_id=row.model_id, name=row.name, revision=row.revision, values=values,
            sha256=row.sha256, author=row.author, note=row.note, id=row.id,
            created_at=_aware(row.created_at), length=row.length, run_id=row.run_id,
        )

    async def append(
        self, model_id: UUID, name: str, values: Sequence[float], author: str, note: str = "",
        run_id: UUID | None = None, base: int | None = None,
    ) -> WeightRevision:
        try:
            vec = to_vector(values)
        except ValueError as err:
            raise UsageError(f"weights '{name}': {err}") from err
        if vec.itemsize != 8:  # pragma: no cover - array('d') is float64 everywhere we run
            raise StorageError("this platform's float is not 64-bit")
        digest = vector_sha256(vec)
        now = utcnow()
        with map_errors():
            # NOTE: with a base, the unique (model, name, revision) is the optimistic lock:
            # a check of the newest revision followed by max + 1 would let two edits that
            # both read revision 3 store 4 and 5, the second overwriting the first unseen.
            last = base if base is not None else await self.session.scalar(
                select(func.max(WeightRow.revision)).where(
                    WeightRow.model_id == model_id, WeightRow.name == name
                )
            )
            rev = (last or 0) + 1
            row = WeightRevision(model_id=model_id, name=name, revision=rev, values=vec,
                                 sha256=digest, author=author, note=note, created_at=now,
                                 run_id=run_id)
            try:
                async with self.session.begin_nested():
                    await self.session.execute(
                        insert(WeightRow).values(
                            id=row.id, model_id=model_id, name=name, revision=rev,
                            data=vec.tobytes(), length=len(vec), sha256=digest, author=author,
                            note=note, created_at=now, run_id=run_id,
                        )
                    )
            except IntegrityError as err:
                raise ConflictError(
                    f"weights '{name}' got a new revision from someone else at the same time; "
                    f"reload with `weights` and retry"
                ) from err
        return row

    _columns = (WeightRow.id, WeightRow.model_id, WeightRow.name, WeightRow.revision,
                WeightRow.sha256, WeightRow.author, WeightRow.note, WeightRow.created_at,
                WeightRow.length, WeightRow.run_id)

    async def latest(self, model_id: UUID) -> list[WeightRevision]:
        newest = (
            select(WeightRow.name, func.max(WeightRow.revision).label("rev"))
            .where(WeightRow.model_id == model_id)
            .group_by(WeightRow.name)
            .subquery()
        )
        stmt = (
            select(*self._columns, WeightRow.data)
            .join(newest, (WeightRow.name == newest.c.name) & (WeightRow.revision == newest.c.rev))
            .where(WeightRow.model_id == model_id)
            .order_by(WeightRow.name)
        )
        with map_errors():
            rows = (await self.session.execute(stmt)).all()
        return [self._to_domain(r) for r in rows]

    async def get(self, model_id: UUID, name: str, revision: int | None = None) -> WeightRevision | None:
        stmt = select(*self._columns, WeightRow.data).where(
            WeightRow.model_id == model_id, WeightRow.name == name
        )
        if revision is None:
            stmt = stmt.order_by(WeightRow.revision.desc()).limit(1)
        else:
            stmt = stmt.where(WeightRow.revision == revision)
        with map_errors():
            row = (await self.session.execute(stmt)).first()
        return self._to_domain(row) if row else None

    async def history(self, model_id: UUID, name: str) -> list[WeightRevision]:
        stmt = (
            select(*self._columns)
            .where(WeightRow.model_id == model_id, WeightRow.name == name)
            .order_by(WeightRow.revision)
        )
        with map_errors():
            rows = (await self.session.execute(stmt)).all()
        return [self._to_domain(r, with_values=False) for r in rows]

    async def names(self, model_id: UUID) -> list[str]:
        with map_errors():
            rows = await self.session.scalars(
                select(WeightRow.name).where(WeightRow.model_id == model_id).distinct()
                .order_by(WeightRow.name)
            )
            return list(rows)

    async def remove(self, model_id: UUID, name: str, newest: int) -> None:
        with map_errors():
            deleted = await _matched(self.session, delete(WeightRow).where(
                WeightRow.model_id == model_id, WeightRow.name == name))
        # Revisions are 1..newest: one more deleted is one appended since it was read.
        if deleted != newest:
            raise ConflictError(f"weights '{name}' got a new revision from someone else at the "
                                f"same time; reload with `weights` and retry")
