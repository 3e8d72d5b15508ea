"""`postgres://`, `postgresql://` and `sqlite:///` URLs work wherever mer takes a database
URL (MER_DATABASE_URL, --database-url of `mer` and `mer-migrate`); another scheme is one
line on stderr, exit status 2. The entry points of `mer` and `mer-migrate` in this process
(tests/entry_points.py), on the real PostgreSQL and SQLite."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from mer import cli, cli_migrate
from tests.entry_points import call_main
from tests.fixtures_pg import _reset_pg

ROOT = Path(__file__).resolve().parents[2]
MAINS = {"mer": cli.main, "mer-migrate": cli_migrate.main}
CATALOG = str(ROOT / "examples" / "catalog.toml")


def _run(program: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return call_main(MAINS[program], args, {"MER_ENV_FILE": os.devnull, **(env or {})}, cwd=ROOT)


@pytest.fixture
def plain_pg_url(pg_url: str) -> str:
    """The session's fresh PostgreSQL database as a user writes it: postgres://..."""
    asyncio.run(_reset_pg(pg_url))
    return pg_url.replace("postgresql+asyncpg://", "postgres://", 1)


def test_postgres_urls_migrate_and_run(plain_pg_url: str, tmp_path: Path) -> None:
    data = {"MER_DATA_DIR": str(tmp_path)}
    up = _run("mer-migrate", "--database-url", plain_pg_url, "up", "--catalog", CATALOG, env=data)
    assert up.returncode == 0, up.stderr
    assert "applied 0001" in up.stdout and "7 added" in up.stdout
    # The database shown is the one the user gave, password masked, driver named.
    status = _run("mer-migrate", "status", env={**data, "MER_DATABASE_URL": plain_pg_url})
    assert status.returncode == 0, status.stderr
    assert "pending:  none" in status.stdout and "postgresql+asyncpg://" in status.stdout

    postgresql = plain_pg_url.replace("postgres://", "postgresql://", 1)
    for args, env in ((["--database-url", plain_pg_url], data),
                      ([], {**data, "MER_DATABASE_URL": postgresql})):
        done = _run("mer", *args, "-c", "models", env=env)
        assert done.returncode == 0, done.stderr
        assert done.stderr == "" and "linear-worker" in done.stdout


def test_a_plain_sqlite_url_migrates_and_runs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'plain.db'}"
    up = _run("mer-migrate", "--database-url", url, "up", "--catalog", CATALOG)
    assert up.returncode == 0, up.stderr
    done = _run("mer", "-c", "run echo", env={"MER_DATABASE_URL": url, "MER_DATA_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert '"model": "echo"' in done.stdout
    assert (tmp_path / "plain.db").is_file()


@pytest.mark.parametrize("program", ["mer", "mer-migrate"])
@pytest.mark.parametrize("how", ["flag", "environment"])
def test_an_unsupported_scheme_is_one_line(program: str, how: str, tmp_path: Path) -> None:
    url = "mysql://u:secret@h/db"
    command = ["-c", "models"] if program == "mer" else ["status"]
    if how == "flag":
        done = _run(program, "--database-url", url, *command, env={"MER_DATA_DIR": str(tmp_path)})
    else:
        done = _run(program, *command, env={"MER_DATABASE_URL": url, "MER_DATA_DIR": str(tmp_path)})
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        f"{program}: error: database URL scheme 'mysql' is not supported; "
        "use sqlite:///PATH or postgresql://..."]
