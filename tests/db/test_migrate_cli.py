"""`mer-migrate`: exit codes 0/1/2, one-line errors, no tracebacks. Its entry point runs
in this process (tests/entry_points.py); start_mer.sh runs the real one
(tests/scripts/test_start_stop.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mer.db.revision import HEAD
from tests.entry_points import call_main

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    from mer import cli_migrate

    return call_main(cli_migrate.main, args, {"MER_ENV_FILE": "/nonexistent/.env", **(env or {})},
                     cwd=ROOT)


def test_up_status_down_on_the_embedded_default(tmp_path: Path) -> None:
    env = {"MER_DATA_DIR": str(tmp_path)}
    st = _run("status", env=env)
    assert st.returncode == 0 and "pending:  0001" in st.stdout
    up = _run("up", "--catalog", "examples/catalog.toml", env=env)
    assert up.returncode == 0, up.stderr
    assert "applied 0001" in up.stdout and "7 added" in up.stdout
    assert (tmp_path / "mer.db").exists()
    again = _run("up", env={**env, "MER_CATALOG": str(ROOT / "examples" / "catalog.toml")})
    assert again.returncode == 0 and "already at head" in again.stdout and "0 added" in again.stdout
    down = _run("down", env=env)  # one step
    assert down.returncode == 0 and down.stdout.split() == ["reverted", HEAD]
    down = _run("down", "--all", env=env)
    # Every revision below HEAD, newest first, as the migration scripts name them.
    scripts = (ROOT / "mer" / "db" / "migrations" / "versions").glob("[0-9][0-9][0-9][0-9]_*.py")
    below = ", ".join(sorted((p.name[:4] for p in scripts if p.name[:4] < HEAD), reverse=True))
    assert down.returncode == 0 and down.stdout.strip() == f"reverted {below}"


def test_up_on_postgres(pg_url: str) -> None:
    import asyncio

    from tests.fixtures_pg import _reset_pg

    asyncio.run(_reset_pg(pg_url))
    up = _run("--database-url", pg_url, "up", "--catalog", "examples/catalog.toml")
    assert up.returncode == 0, up.stderr
    st = _run("--database-url", pg_url, "status")
    assert "pending:  none" in st.stdout


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["--database-url", "mysql://u@h/db", "status"], 2, "scheme 'mysql' is not supported"),
        (["--database-url", "not a url", "status"], 2, "is not a URL"),
        (["--database-url", "postgresql+asyncpg://postgres@127.0.0.1:1/x", "status"], 1,
         "cannot reach the database at postgresql+asyncpg://postgres@127.0.0.1:1/x"),
        (["frobnicate"], 2, "invalid choice"),
        (["up", "--catalog", "/nonexistent/catalog.toml"], 2, "cannot read the catalog"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path: Path, args: list[str], code: int, needle: str) -> None:
    done = _run(*args, env={"MER_DATA_DIR": str(tmp_path)})
    assert done.returncode == code, done.stderr
    assert needle in done.stderr
    assert "Traceback" not in done.stderr


def test_malformed_catalog_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[servers]]\nname = "s"\nkind = "local"\n[[models]]\nname = "m"\n'
                   'server = "s"\ncommand = ["x"]\n[models.weights]\nw = [1.0, "two"]\n')
    env = {"MER_DATA_DIR": str(tmp_path)}
    done = _run("up", "--catalog", str(bad), env=env)
    assert done.returncode == 2
    assert f"{bad}: models[0] 'm@1': weights.w: element 1 is str" in done.stderr
    import sqlite3

    with sqlite3.connect(tmp_path / "mer.db") as conn:
        assert conn.execute("select count(*) from servers").fetchone() == (0,)


def test_version() -> None:
    from mer import __version__

    done = _run("--version")
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout == f"mer-migrate {__version__}\n"
