"""Settings: defaults < .env < MER_* environment < command-line flags.

This is the only module that reads the environment or the .env file. Everything else
receives a Settings value. Secrets (a password inside a database URL) are never logged:
use ``Settings.safe_database_url`` when printing.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from mer.errors import ConfigError

__all__ = ["ENV_KEYS", "Settings", "database_url", "default_data_dir", "load_settings", "mask_password"]

# Every key mer reads, with its meaning; .env.example is written from the same list.
ENV_KEYS: dict[str, str] = {
    "MER_DATABASE_URL": "URL of the MER database (postgresql://user@host/db or sqlite:///path; "
    "postgres:// and the +asyncpg/+aiosqlite forms work too); default: SQLite in MER_DATA_DIR",
    "MER_DATA_DIR": "where the embedded SQLite database and worker state live "
    "(default: the user's data directory, e.g. ~/.local/share/mer)",
    "MER_CATALOG": "TOML model catalog that `mer-migrate up` loads",
    "MER_KNOWN_HOSTS": "known_hosts file checked for SSH servers (default ~/.ssh/known_hosts)",
    "MER_SSH_CONFIG": "OpenSSH client config that resolves SSH server hosts (HostName, Port, "
    "User, IdentityFile, ProxyJump; default ~/.ssh/config)",
    "MER_LOG_LEVEL": "logging level: DEBUG, INFO, WARNING (default) or ERROR",
    "MER_LOG_FILE": "file that receives mer's log and the tracebacks of internal errors, "
    "created when first written (default: mer.log in MER_DATA_DIR)",
    "MER_ALLOW_EDIT": "1 to unlock live edits, like --allow-edit (default 0)",
    "MER_OUTPUT_CAP": "bytes of each run's stdout/stderr kept in the access log (default 1 MiB)",
    "MER_DB_RETRY": "seconds a run's access-log write is retried on new connections while the "
    "database is unreachable, before its final record goes to the local journal (default 10)",
    "MER_ENV_FILE": "the .env file to read (default ./.env); set it in the environment",
    "MER_ARTIFACT_CAP": "bytes of a container run's output files (artifacts) kept under "
    "MER_DATA_DIR/artifacts; files beyond it are listed with size and sha256 only "
    "(default 256 MiB)",
}

# The URL schemes a user may write, and the async driver each one is run with.
_DRIVERS = {
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
}
URL_HINT = "use sqlite:///PATH or postgresql://..."

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def default_data_dir() -> Path:
    import platformdirs  # small, but only needed when no directory is configured

    return Path(platformdirs.user_data_dir("mer", appauthor=False))


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str | None = None  # None: embedded SQLite in data_dir
    data_dir: Path | None = None
    catalog: Path | None = None
    known_hosts: Path | None = None
    ssh_config: Path | None = None
    log_level: str = "WARNING"
    log_file: Path | None = None
    allow_edit: bool = False
    output_cap: int = 1 << 20
    db_retry: float = 10.0
    artifact_cap: int = 256 << 20
    json: bool = False
    debug: bool = False

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir if self.data_dir is not None else default_data_dir()

    @property
    def journal_path(self) -> Path:
        """Final run records that could not reach the database wait here (fsync'd)."""
        return self.resolved_data_dir / "run-journal.jsonl"

    @property
    def artifacts_dir(self) -> Path:
        """Container runs' output files, one directory per run id."""
        return self.resolved_data_dir / "artifacts"

    @property
    def resolved_log_file(self) -> Path:
        return self.log_file if self.log_file is not None else self.resolved_data_dir / "mer.log"

    @property
    def resolved_database_url(self) -> str:
        """The URL with mer's async driver (see ``database_url``)."""
        if self.database_url:
            return database_url(self.database_url)
        return f"sqlite+aiosqlite:///{self.resolved_data_dir / 'mer.db'}"

    @property
    def resolved_known_hosts(self) -> Path:
        if self.known_hosts is not None:
            return self.known_hosts
        return Path.home() / ".ssh" / "known_hosts"

    @property
    def resolved_ssh_config(self) -> Path:
        return self.ssh_config if self.ssh_config is not None else Path.home() / ".ssh" / "config"

    @property
    def safe_database_url(self) -> str:
        """The database URL with any password masked, for messages and logs."""
        return mask_password(self.resolved_database_url)


def database_url(url: str) -> str:
    """``url`` as SQLAlchemy's async engine needs it: ``postgres://`` and ``postgresql://``
    run on asyncpg, ``sqlite://`` on aiosqlite; the explicit driver forms stay as they are.

    Every URL mer opens comes through here (Settings and mer/db/engine.py).
    Raises ConfigError for what is not a URL or a scheme mer cannot use."""
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme:
        raise ConfigError(f"database URL {mask_password(url)!r} is not a URL; {URL_HINT}")
    driver = _DRIVERS.get(scheme.lower())
    if driver is None:
        raise ConfigError(f"database URL scheme {scheme!r} is not supported; {URL_HINT}")
    return f"{driver}://{rest}"


def mask_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in creds:
        return url
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


def _read_dotenv(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def _parse_bool(key: str, value: str) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ConfigError(f"{key}={value!r} is not a boolean; use 1 or 0")


def load_settings(
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    dotenv_path: Path | None = None,
) -> Settings:
    """Build Settings from defaults, then .env, then MER_* variables, then ``flags``.

    ``flags`` holds only the options the user actually gave (None values are ignored).
    Raises ConfigError for a value that cannot be parsed.
    """
    environ = os.environ if environ is None else environ
    if dotenv_path is None:
        dotenv_path = Path(environ.get("MER_ENV_FILE", ".env"))
    merged: dict[str, str] = {**_read_dotenv(dotenv_path)}
    merged.update({k: v for k, v in environ.items() if k.startswith("MER_")})

    values: dict[str, Any] = {}
    if merged.get("MER_DATABASE_URL"):
        values["database_url"] = database_url(merged["MER_DATABASE_URL"])
    for key, name in (
        ("MER_DATA_DIR", "data_dir"),
        ("MER_CATALOG", "catalog"),
        ("MER_KNOWN_HOSTS", "known_hosts"),
        ("MER_SSH_CONFIG", "ssh_config"),
        ("MER_LOG_FILE", "log_file"),
    ):
        if merged.get(key):
            values[name] = Path(merged[key]).expanduser()
    if merged.get("MER_LOG_LEVEL"):
        level = merged["MER_LOG_LEVEL"].upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ConfigError(f"MER_LOG_LEVEL={level!r} is not a log level; use DEBUG..ERROR")
        values["log_level"] = level
    if "MER_ALLOW_EDIT" in merged:
        values["allow_edit"] = _parse_bool("MER_ALLOW_EDIT", merged["MER_ALLOW_EDIT"])
    if merged.get("MER_OUTPUT_CAP"):
        try:
            values["output_cap"] = int(merged["MER_OUTPUT_CAP"])
        except ValueError:
            raise ConfigError(
                f"MER_OUTPUT_CAP={merged['MER_OUTPUT_CAP']!r} is not a number of bytes"
            ) from None

    if merged.get("MER_DB_RETRY"):
        try:
            values["db_retry"] = max(float(merged["MER_DB_RETRY"]), 0.0)
        except ValueError:
            raise ConfigError(
                f"MER_DB_RETRY={merged['MER_DB_RETRY']!r} is not a number of seconds"
            ) from None

    if merged.get("MER_ARTIFACT_CAP"):
        try:
            values["artifact_cap"] = max(int(merged["MER_ARTIFACT_CAP"]), 0)
        except ValueError:
            raise ConfigError(
                f"MER_ARTIFACT_CAP={merged['MER_ARTIFACT_CAP']!r} is not a number of bytes"
            ) from None

    known = {f.name for f in fields(Settings)}
    for name, value in (flags or {}).items():
        if value is None:
            continue
        if name not in known:
            raise ConfigError(f"unknown setting {name!r}")
        if name in {"data_dir", "catalog", "known_hosts", "ssh_config", "log_file"}:
            value = Path(value).expanduser()
        elif name == "database_url":
            value = database_url(value)
        values[name] = value
    return replace(Settings(), **values)


_SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def dotenv_exports(environ: Mapping[str, str] | None = None,
                   dotenv_path: Path | None = None) -> str:
    """The variables of the .env file mer reads (MER_ENV_FILE, default ./.env) that the
    environment does not set, as POSIX shell ``export NAME='value'`` lines. start_mer.sh
    and stop_mer.sh evaluate them, so the scripts read .env exactly as mer does
    (python-dotenv: quoting, escapes, inline comments, ${VAR} expansion), and a variable
    of the environment wins over .env there too."""
    import shlex

    environ = os.environ if environ is None else environ
    if dotenv_path is None:
        dotenv_path = Path(environ.get("MER_ENV_FILE", ".env"))
    return "".join(f"export {key}={shlex.quote(value)}\n"
                   for key, value in _read_dotenv(dotenv_path).items()
                   if key not in environ and _SHELL_NAME.match(key))


def _main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m mer.config",
        description="Print the .env file's variables that the environment does not set, as "
        "shell export lines: eval \"$(python -m mer.config --export)\".")
    parser.add_argument("--export", action="store_true", required=True,
                        help="print export lines (the only action)")
    parser.parse_args(argv)
    sys.stdout.write(dotenv_exports())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(_main())
