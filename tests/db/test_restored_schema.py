"""The PostgreSQL tests' prepared databases (tests/fixtures_pg.py ``restore_pg``: a pg_dump
of a database prepared once, restored into an empty schema) are the databases their
preparation makes: Alembic's migration (``migrate``), and that with the example catalog
(tests/faults/shell_harness.py ``prepare_database``). The same tables, columns, indexes,
constraints, triggers, functions and rows (but for the ids and times each load makes
anew), read from the catalogs rather than pg_dump."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from mer.db.revision import HEAD
from tests.conftest import skip_or_fail
from tests.fixtures_pg import _reset_pg, _upgrade, dumped_pg, migrate, restore_pg

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


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00")


def _generated(row: str) -> str:
    """A row without what each load makes anew: its ids and timestamps."""
    return TIME.sub("<time>", UUID.sub("<uuid>", row))


async def _schema(url: str) -> dict[str, Any]:
    """What the catalogs say of the public schema, and every row of every table."""
    import asyncpg

    conn = await asyncpg.connect(dsn=url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        seen: dict[str, Any] = {k: sorted(map(tuple, await conn.fetch(q))) for k, q in CATALOG.items()}
        tables = [t for t, kind, *_ in seen["relations"] if kind in ("r", "p")]
        seen["rows"] = {t: sorted(_generated(json.dumps(json.loads(r[0]), sort_keys=True))
                                  for r in await conn.fetch(f'SELECT to_jsonb(t)::text FROM public."{t}" t'))
                        for t in tables}
        return seen
    finally:
        await conn.close()


async def _catalog(url: str) -> None:
    from tests.faults.shell_harness import _prepare

    await _prepare(url)  # migrated, with the example catalog


@pytest.mark.parametrize("key, prepare", [("migrated", _upgrade), ("catalog", _catalog)])
async def test_a_restored_database_is_the_one_its_preparation_makes(
        pg_url: str, key: str, prepare: Any) -> None:
    sql = await dumped_pg(key, prepare)
    if sql is None:
        skip_or_fail("pg_dump is not installed or fails (Debian: apt-get install postgresql-client)")
    await _reset_pg(pg_url)
    await prepare(pg_url)  # Alembic itself (and the catalog loaded through the services)
    made = await _schema(pg_url)
    await _reset_pg(pg_url)
    assert await restore_pg(pg_url, key, prepare)
    restored = await _schema(pg_url)

    assert restored == made
    # Not equal because both are empty: the head revision, the seed row, the catalog
    # triggers and the indexes are there.
    assert restored["rows"]["alembic_version"] == [json.dumps({"version_num": HEAD})]
    assert restored["rows"]["catalog_state"]
    assert "bump_catalog" in {name for _, name, *_ in restored["triggers"]}
    assert any(not name.endswith("_pkey") for _, name, _ in restored["indexes"])
    assert bool(restored["rows"]["models"]) is (key == "catalog")

    # A database that is not empty is left alone (migrate: to Alembic, here a no-op).
    assert not await restore_pg(pg_url, key, prepare)
    await migrate(pg_url)
    assert await _schema(pg_url) == made
