"""The record of catalog entries already offered once (table catalog_seeds, migration
0006): what lets a catalog load add what is missing without bringing back what an admin
removed. SQLAlchemy implementation of interfaces.SeedRepository."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from mer.db.engine import map_errors
from mer.db.orm import CatalogSeedRow
from mer.domain import utcnow

__all__ = ["SqlSeedRepository"]


class SqlSeedRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def all(self) -> set[tuple[str, str]]:
        with map_errors():
            rows = await self.session.execute(select(CatalogSeedRow.kind, CatalogSeedRow.key))
            return {(kind, key) for kind, key in rows}

    async def add(self, seeds: Iterable[tuple[str, str]]) -> None:
        new = sorted(set(seeds) - await self.all())
        if not new:
            return
        now = utcnow()
        with map_errors():
            await self.session.execute(
                insert(CatalogSeedRow),
                [{"kind": kind, "key": key, "seeded_at": now} for kind, key in new],
            )
