"""Schema migrations (Alembic) run on a connection mer already holds.

Alembic's command functions are synchronous; they run inside
``await connection.run_sync(...)`` with the connection shared through
``config.attributes`` (Alembic's "connection sharing" recipe), so they work inside
mer's one event loop and never call asyncio.run themselves.

The script directory is mer/db/migrations, inside the package: a wheel or pipx install
migrates with no source tree and no alembic.ini (the repository's alembic.ini is for
``alembic`` run by hand from the root).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from alembic import command
from mer.config import mask_password
from mer.db.engine import map_errors
from mer.errors import UsageError

__all__ = ["MigrationStatus", "downgrade", "ensure_schema", "status", "upgrade"]

SCRIPTS = Path(__file__).resolve().parent / "migrations"


def _config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPTS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _chain() -> list[str]:
    """Revision ids from the first to head."""
    script = ScriptDirectory.from_config(_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


@dataclass(frozen=True, slots=True)
class MigrationStatus:
    current: str | None
    head: str
    pending: list[str]


async def status(engine: AsyncEngine) -> MigrationStatus:
    chain = _chain()
    url = str(engine.url)
    # NOTE: the first connection of a process: a wrong database name, user or password
    # shows here, so the message says where it tried.
    with map_errors(url, what=f"opening the database at {mask_password(url)}"):
        async with engine.connect() as conn:
            current = await conn.run_sync(_current)
    done = chain.index(current) + 1 if current in chain else 0
    return MigrationStatus(current=current, head=chain[-1], pending=chain[done:])


async def _run(engine: AsyncEngine, action: str, target: str) -> None:
    def run(sync_conn: Connection) -> None:
        cfg = _config(sync_conn)
        if action == "upgrade":
            command.upgrade(cfg, target)
        else:
            command.downgrade(cfg, target)

    with map_errors(str(engine.url), what="the migration"):
        async with engine.begin() as conn:
            await conn.run_sync(run)


async def upgrade(engine: AsyncEngine, steps: int | None = None) -> list[str]:
    """Apply pending revisions (all, or ``steps`` of them); returns those applied."""
    st = await status(engine)
    todo = st.pending if steps is None else st.pending[:steps]
    if steps is not None and steps < 1:
        raise UsageError("--steps must be at least 1")
    if todo:
        await _run(engine, "upgrade", todo[-1])
    return todo


async def downgrade(engine: AsyncEngine, steps: int | None = 1) -> list[str]:
    """Revert ``steps`` applied revisions (None: all of them); returns those reverted."""
    st = await status(engine)
    chain = _chain()
    applied = chain[: chain.index(st.current) + 1] if st.current in chain else []
    if steps is not None and steps < 1:
        raise UsageError("--steps must be at least 1")
    undo = applied[::-1] if steps is None else applied[::-1][:steps]
    if undo:
        remaining = applied[: len(applied) - len(undo)]
        await _run(engine, "downgrade", remaining[-1] if remaining else "base")
    return undo


async def ensure_schema(engine: AsyncEngine) -> None:
    """Bring the database to head when it is behind (first use of the embedded DB)."""
    if (await status(engine)).pending:
        await upgrade(engine)
