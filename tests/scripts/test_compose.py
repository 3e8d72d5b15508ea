"""compose.yaml matches what start_mer.sh expects: a `db` PostgreSQL service with a
healthcheck, a named volume, settings from .env and the port start_mer.sh connects to."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_db_service_matches_start_script() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    db = compose["services"]["db"]
    assert db["image"].startswith("postgres:")
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    volume = db["volumes"][0].split(":")[0]
    assert volume in compose["volumes"]  # a named volume, not a bind mount

    env = db["environment"]
    start = (ROOT / "start_mer.sh").read_text()
    # The same variables and defaults on both sides, so the URL start_mer.sh builds works.
    for key, var in (
        ("POSTGRES_USER", "MER_PG_USER"),
        ("POSTGRES_PASSWORD", "MER_PG_PASSWORD"),
        ("POSTGRES_DB", "MER_PG_DB"),
    ):
        default = re.fullmatch(r"\$\{" + var + r":-(\w+)\}", env[key]).group(1)
        assert f'"${{{var}:-{default}}}"' in start
    assert db["ports"] == ["127.0.0.1:${MER_PG_PORT:-5432}:5432"]
    assert '"${MER_PG_PORT:-5432}"' in start
    assert "docker compose -f \"$here/compose.yaml\" up -d --wait db" in start

    example = (ROOT / ".env.example").read_text()
    for var in ("MER_PG_USER", "MER_PG_PASSWORD", "MER_PG_DB", "MER_PG_PORT"):
        assert f"{var}=" in example
