"""The PostgreSQL tests' migrated database (tests/fixtures_pg.py ``migrate``: a pg_dump of
a database Alembic migrated, restored into an empty schema) is the database Alembic
makes: the same tables, columns, indexes, constraints, triggers, functions and rows,
read from the catalogs rather than from pg_dump."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mer.db.revision import HEAD
from tests.conftest import skip_or_fail
from tests.fixtures_pg import _reset_pg, _restore_pg, _upgrade, migrate, migrated_pg_sql

pytestmark = pytest.mark.postgres

CATALOG = {
    "columns": """SELECT table_name, column_name, ordinal_position, data_type, udt_name,
                         character_maximum_length, numeric_precision, is_nullable,
                         column_default, is_identity, is_generated
                  FROM information_schema.columns WHERE table_schema = 'public'""",
    "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
    "constraints": """SELECT conrelid::regclass::text, conname, contype::text, pg_get_constraintdef(oid)
                      FROM pg_constraint WHERE connamespace = 'public'::regnamespace""",
    "triggers": """SELECT tgrelid::regclass::text, tgname, tgenabled::text, pg_get_triggerdef(oid)
                   FROM pg_trigger WHERE NOT tgisinternal
                   AND tgrelid::regclass::text NOT LIKE 'pg_%'""",
    "functions": """SELECT proname, pg_get_functiondef(oid) FROM pg_proc
                    WHERE pronamespace = 'public'::regnamespace""",
    "relations": """SELECT relname, relkind::text, relpersistence::text, reloptions::text FROM pg_class
                    WHERE relnamespace = 'public'::regnamespace""",
    "sequences": "SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = 'public'",
}


async def _schema(url: str) -> dict[str, Any]:
    """What the catalogs say of the public schema, and every row of every table."""
    import asyncpg

    conn = await asyncpg.connect(dsn=url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        seen: dict[str, Any] = {k: sorted(map(tuple, await conn.fetch(q))) for k, q in CATALOG.items()}
        tables = [t for t, kind, *_ in seen["relations"] if kind in ("r", "p")]
        seen["rows"] = {t: sorted(json.dumps(json.loads(r[0]), sort_keys=True) for r in await conn.fetch(
            f'SELECT to_jsonb(t)::text FROM public."{t}" t')) for t in tables}
        return seen
    finally:
        await conn.close()


async def test_a_restored_schema_is_the_one_alembic_migrates(pg_url: str) -> None:
    sql = await migrated_pg_sql()
    if sql is None:
        skip_or_fail("pg_dump is not installed or fails (Debian: apt-get install postgresql-client)")
    await _reset_pg(pg_url)
    await _upgrade(pg_url)  # Alembic itself
    migrated = await _schema(pg_url)
    await _reset_pg(pg_url)
    assert await _restore_pg(pg_url, sql)
    restored = await _schema(pg_url)

    assert restored == migrated
    # Not equal because both are empty: the head revision, the seed row, the catalog
    # triggers and the run log's indexes are there.
    assert restored["rows"]["alembic_version"] == [json.dumps({"version_num": HEAD})]
    assert restored["rows"]["catalog_state"]
    assert "bump_catalog" in {name for _, name, *_ in restored["triggers"]}
    assert any(not name.endswith("_pkey") for _, name, _ in restored["indexes"])

    # A schema that is not empty is left to Alembic (here: nothing to do).
    await migrate(pg_url)
    assert await _schema(pg_url) == migrated
