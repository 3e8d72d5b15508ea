"""The one place that wires engine, unit of work, executors and services.

``build_runtime`` runs on the bridge's event loop (the engine belongs to it). It imports
SQLAlchemy and friends lazily, so that the shell can draw its prompt while this runs in
the background. Tests pass ``uow``/``executors`` overrides to use fakes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from mer.config import Settings
from mer.errors import StorageError
from mer.services.context import ExecutorSource, ServiceContext

__all__ = ["Runtime", "build_runtime"]

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    ctx: ServiceContext
    engine: Any = None

    async def close(self) -> None:
        try:
            await self.ctx.executors.close()
        finally:
            try:
                await self.ctx.run_log.close()
            finally:
                if self.engine is not None:
                    await self.engine.dispose()


async def build_runtime(settings: Settings, *, uow: Any = None,
                        executors: ExecutorSource | None = None) -> Runtime:
    engine = run_log = None
    if uow is None:
        from mer.db.engine import create_engine
        from mer.db.journal import RunJournal
        from mer.db.revision import HEAD, current_revision
        from mer.db.run_log import SqlRunLog
        from mer.db.uow import make_uow_factory

        engine = create_engine(settings.resolved_database_url)
        try:
            if await current_revision(engine) != HEAD:
                await _migrate_or_refuse(engine, settings)
        except BaseException:
            await engine.dispose()
            raise
        uow = make_uow_factory(engine)
        run_log = SqlRunLog(engine, journal=RunJournal(settings.journal_path),
                            retry_for=settings.db_retry)
    if executors is None:
        from mer.execution.registry import ExecutorRegistry

        executors = ExecutorRegistry(
            known_hosts=str(settings.resolved_known_hosts), output_cap=settings.output_cap,
            ssh_config=str(settings.resolved_ssh_config), data_dir=str(settings.resolved_data_dir),
        )
    from mer.services.artifacts import ArtifactStore

    ctx = ServiceContext(uow=uow, executors=executors, allow_edit=settings.allow_edit,
                         artifacts=ArtifactStore(settings.artifacts_dir, settings.artifact_cap))
    if run_log is not None:  # else the default, a run log over the (fake) unit of work
        ctx.run_log = run_log
        await _recover(ctx)
    return Runtime(settings=settings, ctx=ctx, engine=engine)


async def _recover(ctx: ServiceContext) -> None:
    """What an earlier mer could not finish: records it kept in the journal, then rows
    whose mer is gone (in this order: a journaled ending is the true one)."""
    from mer.services.reaping import reap_lost_runs

    try:
        await ctx.run_log.replay()
        await reap_lost_runs(ctx)
    except StorageError:
        log.warning("recovering earlier runs failed; retried at the next start", exc_info=True)


async def _migrate_or_refuse(engine: Any, settings: Settings) -> None:
    from mer.db.migrate import ensure_schema, status

    if settings.resolved_database_url.startswith("sqlite"):
        # The embedded database is created and migrated on first use.
        await ensure_schema(engine)
        return
    st = await status(engine)
    if st.pending:
        raise StorageError(
            f"the database at {settings.safe_database_url} is at revision "
            f"{st.current or 'none'}, not {st.head}; run `mer-migrate up`"
        )
