"""Fixtures that drive the real `mer` process on a fresh database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


class Mer:
    """Runs `mer` with its own data directory (embedded SQLite) or a given database URL."""

    def __init__(self, tmp: Path, database_url: str | None = None) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MER_")}
        self.env.update(MER_DATA_DIR=str(tmp / "data"), MER_ENV_FILE=str(tmp / "none.env"),
                        MER_KNOWN_HOSTS=str(tmp / "known_hosts"))
        if database_url:
            self.env["MER_DATABASE_URL"] = database_url
        done = subprocess.run([str(BIN / "mer-migrate"), "up", "--catalog",
                               str(ROOT / "examples" / "catalog.toml")],
                              env=self.env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr

    def argv(self) -> list[str]:
        return [str(BIN / "mer")]

    def __call__(self, *args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "mer"), *args], env=self.env, input=stdin,
                              capture_output=True, text=True, timeout=timeout,
                              stdin=None if stdin is not None else subprocess.DEVNULL)

    def popen(self, *args: str, **kw) -> subprocess.Popen[str]:
        return subprocess.Popen([str(BIN / "mer"), *args], env=self.env, text=True, **kw)


@pytest.fixture
def mer(tmp_path: Path) -> Mer:
    return Mer(tmp_path)
