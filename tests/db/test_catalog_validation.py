"""The catalog goes through the shell's rule set (mer/validation.py): a bad entry is refused
whole with one line naming the file, the entry and the field, and nothing is written, not
even the good entries before it. The two cases of issue 11 as `mer-migrate up` shows them;
the rest in-process on both dialects."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from mer.db.catalog import load_catalog
from mer.errors import ConfigError
from mer.execution.registry import ExecutorRegistry

MIGRATE = str(Path(sys.executable).parent / "mer-migrate")

GOOD = """
[[servers]]
name = "local"
kind = "local"

[[models]]
name = "fine"
server = "local"
command = ["python3", "-c", "print(1)"]
"""

NAME = ('[[models]]\nname = "a b@c"\nserver = "local"\ncommand = ["python3"]\n', "models[1] 'a b@c@1'",
        "name")
SSH = ('[[servers]]\nname = "gpu1"\nkind = "ssh"\nport = 70000\n', "servers[1] 'gpu1'", "host")


@pytest.mark.parametrize(("entry", "where", "field"), [NAME, SSH])
def test_mer_migrate_up_refuses_a_bad_entry_in_one_line_and_writes_nothing(
    tmp_path: Path, entry: str, where: str, field: str
) -> None:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(GOOD + entry)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MER_")}
    env.update(MER_DATA_DIR=str(tmp_path), MER_ENV_FILE=str(tmp_path / "none.env"))
    done = subprocess.run([MIGRATE, "up", "--catalog", str(catalog)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"mer-migrate: error: {catalog}: {where}: {field}"), lines
    with sqlite3.connect(tmp_path / "mer.db") as conn:
        assert conn.execute("select count(*) from servers").fetchone() == (0,)
        assert conn.execute("select count(*) from models").fetchone() == (0,)
        assert conn.execute("select count(*) from audit_log").fetchone() == (0,)


@pytest.mark.parametrize(
    ("entry", "where", "field"),
    [
        NAME,
        SSH,
        ('[[models]]\nname = "m"\nversion = "1 2"\nserver = "local"\ncommand = ["python3"]\n',
         "models[1] 'm@1 2'", "version"),
        ('[[models]]\nname = "m"\nserver = "local"\ncommand = ["-x"]\n', "models[1] 'm@1'", "command"),
        ('[[models]]\nname = "m"\nserver = "local"\ncommand = ["python3"]\ntimeout = -1\n',
         "models[1] 'm@1'", "timeout"),
        ('[[models]]\nname = "m"\nserver = "local"\ncommand = ["python3"]\nenv = {"-S x" = "1"}\n',
         "models[1] 'm@1'", "env"),
        ('[[models]]\nname = "m"\nserver = "local"\ncommand = ["python3"]\n[models.weights]\n"a\\nb" = [1.0]\n',
         "models[1] 'm@1'", "weights.'a\\nb'"),
        ('[[models]]\nname = "m"\nserver = "nowhere"\ncommand = ["python3"]\n', "models[1] 'm@1'", "server"),
        ('[[servers]]\nname = "gpu1"\nkind = "ssh"\nhost = "gpu1"\nport = 70000\n',
         "servers[1] 'gpu1'", "port"),
        ('[[servers]]\nname = "gpu1"\nkind = "ssh"\nhost = "-oProxyCommand=x"\n', "servers[1] 'gpu1'", "host"),
        ('[[servers]]\nname = "gpu1"\nkind = "local"\nmax_runs = 0\n', "servers[1] 'gpu1'", "max_runs"),
        ('[[servers]]\nname = "gpu1"\nkind = "sssh"\nhost = "gpu1"\n', "servers[1] 'gpu1'", "kind"),
    ],
)
async def test_a_bad_entry_is_refused_whole_naming_file_entry_and_field(
    tmp_path: Path, uow_factory, entry: str, where: str, field: str
) -> None:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(GOOD + entry)
    with pytest.raises(ConfigError) as info:
        await load_catalog(catalog, uow_factory, ExecutorRegistry().kinds())
    assert str(info.value).startswith(f"{catalog}: {where}: {field}") and "\n" not in str(info.value)
    async with uow_factory() as uow:
        assert await uow.servers.list() == [] and await uow.models.list() == []
        assert await uow.audit.query() == []
