"""The SQLAlchemy unit of work: one AsyncSession, one transaction, eight repositories.

``async with uow: ...; await uow.commit()``; leaving the block without a commit rolls
back, so a failed edit leaves nothing half-written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Self

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from mer.db.alias_repository import SqlAliasRepository
from mer.db.engine import make_session_factory, map_errors
from mer.db.interfaces import (
    AliasRepository,
    AuditRepository,
    ModelRepository,
    ParameterRepository,
    PipelineRepository,
    RunRepository,
    SeedRepository,
    ServerRepository,
    WeightRepository,
)
from mer.db.pipeline_repository import SqlPipelineRepository
from mer.db.repository import (
    SqlAuditRepository,
    SqlModelRepository,
    SqlParameterRepository,
    SqlServerRepository,
)
from mer.db.run_records import SqlRunRepository
from mer.db.seeds import SqlSeedRepository
from mer.db.weight_repository import SqlWeightRepository

__all__ = ["SqlAlchemyUnitOfWork", "make_uow_factory"]


class SqlAlchemyUnitOfWork:
    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._session_factory = session_factory
        self.session: AsyncSession | None = None

    async def __aenter__(self) -> Self:
        self.session = session = self._session_factory()
        # Typed as the interfaces: mypy holds each repository to its protocol.
        self.servers: ServerRepository = SqlServerRepository(session)
        self.models: ModelRepository = SqlModelRepository(session)
        self.aliases: AliasRepository = SqlAliasRepository(session)
        self.parameters: ParameterRepository = SqlParameterRepository(session)
        self.weights: WeightRepository = SqlWeightRepository(session)
        self.runs: RunRepository = SqlRunRepository(session)
        self.audit: AuditRepository = SqlAuditRepository(session)
        self.seeds: SeedRepository = SqlSeedRepository(session)
        self.pipelines: PipelineRepository = SqlPipelineRepository(session)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self.session is not None
        try:
            if self.session.in_transaction():  # nothing to undo after a commit
                await self.session.rollback()
        except Exception:
            # NOTE: a failed rollback (connection lost) must not mask the error that
            # brought us here; without one, report it.
            if exc[0] is None:
                raise
        finally:
            await self.session.close()
            self.session = None

    async def commit(self) -> None:
        assert self.session is not None
        with map_errors(what="saving to the database"):
            await self.session.commit()

    async def rollback(self) -> None:
        assert self.session is not None
        await self.session.rollback()


def make_uow_factory(engine: AsyncEngine) -> Callable[[], SqlAlchemyUnitOfWork]:
    """A UnitOfWorkFactory bound to ``engine``."""
    factory = make_session_factory(engine)
    return lambda: SqlAlchemyUnitOfWork(factory)
