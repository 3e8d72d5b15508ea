"""Fixtures that drive `mer` on a fresh database: the real process, or `mer.cli.main` in
this process for what needs no process of its own (flags, output, exit codes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mer.config import Settings
from tests.entry_points import call_main
from tests.faults.shell_harness import InProcessShell, prepare_database

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


class Mer:
    """Runs `mer` with its own data directory (embedded SQLite) or a given database URL,
    migrated and holding the example catalog."""

    def __init__(self, tmp: Path, database_url: str | None = None) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MER_")}
        self.env.update(MER_DATA_DIR=str(tmp / "data"), MER_ENV_FILE=str(tmp / "none.env"),
                        MER_KNOWN_HOSTS=str(tmp / "known_hosts"))
        if database_url:
            self.env["MER_DATABASE_URL"] = database_url
        prepare_database(database_url or f"sqlite+aiosqlite:///{tmp / 'data' / 'mer.db'}")

    def argv(self) -> list[str]:
        return [str(BIN / "mer")]

    def __call__(self, *args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """The real `mer ARGS` process."""
        return subprocess.run([str(BIN / "mer"), *args], env=self.env, input=stdin,
                              capture_output=True, text=True, timeout=timeout,
                              stdin=None if stdin is not None else subprocess.DEVNULL)

    def popen(self, *args: str, **kw) -> subprocess.Popen[str]:
        return subprocess.Popen([str(BIN / "mer"), *args], env=self.env, text=True, **kw)

    def shell(self, **settings: Any) -> InProcessShell:
        """A MerShell in this process on this Mer's database, as `mer` builds it: one
        shell of several users (``settings``: allow_edit=True, json=True, ...)."""
        env = self.env
        return InProcessShell(Settings(database_url=env.get("MER_DATABASE_URL"),
                                       data_dir=Path(env["MER_DATA_DIR"]),
                                       known_hosts=Path(env["MER_KNOWN_HOSTS"]), **settings))

    def main(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """`mer ARGS` in this process (see ``run_main``)."""
        return run_main(self.env, *args, stdin=stdin)


def run_main(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """`mer ARGS` in this process (tests/entry_points.py)."""
    from mer import cli

    return call_main(cli.main, args, env, stdin)


@pytest.fixture
def mer(tmp_path: Path) -> Mer:
    return Mer(tmp_path)
