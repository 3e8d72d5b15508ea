"""Alembic environment for the MER database (async, with connection sharing).

This directory (env.py and versions/) is the migration script directory; it ships inside
the mer package, so an installed mer (a wheel, pipx) migrates with no source tree.
``alembic upgrade head`` from the repository root runs this same file through
alembic/env.py.

When mer (or a test) already holds a connection it passes it in
``config.attributes["connection"]`` and the migration runs on it; otherwise a NullPool
async engine is opened for MER_DATABASE_URL (or the embedded SQLite default). The
migration scripts themselves stay synchronous. SQLite uses batch mode for ALTERs.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import pool
from sqlalchemy.engine import Connection

from alembic import context
from mer.db.orm import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def do_run_migrations(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    from mer.config import load_settings
    from mer.db.engine import create_engine

    url = config.get_main_option("sqlalchemy.url") or load_settings().resolved_database_url
    checked = create_engine(url)  # validates the URL, picks its driver, creates the SQLite dir
    checked.sync_engine.dispose()
    engine = create_async_engine(checked.url, poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(do_run_migrations)
    await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        do_run_migrations(connection)
    else:
        asyncio.run(run_async_migrations())


if context.is_offline_mode():
    raise SystemExit("mer migrations run online only: `mer-migrate up` or `alembic upgrade head`")
run_migrations_online()
