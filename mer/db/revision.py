"""The schema revision this code needs, checked without loading Alembic.

Importing Alembic and reading the migration scripts costs ~65 ms here, which every
`mer -c ...` of a scheduler would pay just to learn that nothing is pending. mer reads
the version table itself and loads Alembic (mer/db/migrate.py) only when the database
is not at HEAD. tests/db/test_migrations.py keeps HEAD equal to Alembic's head.
"""

from __future__ import annotations

from sqlalchemy import exc, text
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["HEAD", "current_revision"]

HEAD = "0008"


async def current_revision(engine: AsyncEngine) -> str | None:
    """The database's revision; None when it has none or cannot tell (the caller then
    asks Alembic, which also reports an unreachable database properly)."""
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    except (exc.DBAPIError, OSError):
        return None
