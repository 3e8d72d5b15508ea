"""Aliases of model versions (table model_aliases, migration 0007): ``m@live`` names one
version of ``m``. SQLAlchemy implementation of interfaces.AliasRepository.

An alias is keyed by the model's name, not by a model id: it names a version, so moving
it is one UPDATE of one row. The table's triggers bump the catalog generation, so a
shell's cached run plan for ``m@live`` is read again after the alias moved.
"""

from __future__ import annotations

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from mer.db.engine import map_errors
from mer.db.orm import AliasRow
from mer.db.repository import _aware, _matched, _Repo
from mer.domain import ModelAlias, utcnow
from mer.errors import ConflictError

__all__ = ["SqlAliasRepository"]


class SqlAliasRepository(_Repo):
    @staticmethod
    def _to_domain(row: AliasRow) -> ModelAlias:
        return ModelAlias(name=row.name, alias=row.alias, version=row.version,
                          updated_at=_aware(row.updated_at))

    async def list(self, name: str | None = None) -> list[ModelAlias]:
        stmt = select(AliasRow).order_by(AliasRow.name, AliasRow.alias)
        if name is not None:
            stmt = stmt.where(AliasRow.name == name)
        with map_errors():
            return [self._to_domain(r) for r in await self.session.scalars(stmt)]

    async def get(self, name: str, alias: str) -> ModelAlias | None:
        with map_errors():
            row = await self.session.get(AliasRow, (name, alias))
        return self._to_domain(row) if row is not None else None

    async def set(self, alias: ModelAlias) -> ModelAlias:
        now = utcnow()
        key = (AliasRow.name == alias.name, AliasRow.alias == alias.alias)
        with map_errors():
            moved = await _matched(self.session,
                                   update(AliasRow).where(*key).values(version=alias.version,
                                                                       updated_at=now))
            if not moved:
                try:
                    # NOTE: a savepoint, so that losing a race to another session's insert
                    # leaves this transaction usable for the ConflictError's rollback.
                    async with self.session.begin_nested():
                        await self.session.execute(insert(AliasRow).values(
                            name=alias.name, alias=alias.alias, version=alias.version,
                            updated_at=now))
                except IntegrityError as err:
                    raise ConflictError(f"alias '{alias.ref}' was created by someone else at the "
                                        f"same time; see `model show {alias.ref}` and retry") from err
        return ModelAlias(alias.name, alias.alias, alias.version, now)

    async def remove(self, name: str, alias: str) -> bool:
        with map_errors():
            gone = await _matched(self.session, delete(AliasRow).where(
                AliasRow.name == name, AliasRow.alias == alias))
        return gone > 0
