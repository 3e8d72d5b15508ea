"""Alembic migrations agree with the models and go up, down and up again, on both dialects."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from mer.db.engine import create_engine
from mer.db.migrate import downgrade, ensure_schema, status, upgrade
from mer.db.orm import Base


async def _diff(engine) -> list:
    async with engine.connect() as conn:
        return await conn.run_sync(
            lambda sync: compare_metadata(
                MigrationContext.configure(sync, opts={"compare_type": True}), Base.metadata
            )
        )


async def test_head_matches_models_with_no_drift(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        assert (await status(engine)).current is None
        await upgrade(engine)
        assert await _diff(engine) == []
        st = await status(engine)
        assert st.current == st.head and st.pending == []
        assert await upgrade(engine) == []  # a second up is a no-op
    finally:
        await engine.dispose()


async def test_the_revision_mer_checks_at_start_is_alembics_head(db_url: str) -> None:
    from mer.db.revision import HEAD, current_revision

    engine = create_engine(db_url)
    try:
        assert await current_revision(engine) is None  # no version table yet
        await upgrade(engine)
        assert HEAD == (await status(engine)).head == await current_revision(engine)
    finally:
        await engine.dispose()


async def test_up_down_up(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        applied = await upgrade(engine)
        assert applied
        reverted = await downgrade(engine, steps=None)
        assert reverted == applied[::-1]
        st = await status(engine)
        assert st.current is None and st.pending == applied
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda s: s.dialect.get_table_names(s))
        assert set(tables) <= {"alembic_version"}
        await ensure_schema(engine)
        assert (await status(engine)).pending == []
        assert await _diff(engine) == []
    finally:
        await engine.dispose()
