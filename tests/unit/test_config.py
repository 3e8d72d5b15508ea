"""Settings precedence and validation (mer/config.py), and .env.example coverage."""

from __future__ import annotations

from pathlib import Path

import pytest

from mer.config import ENV_KEYS, Settings, database_url, load_settings, mask_password
from mer.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_use_embedded_sqlite_in_data_dir(tmp_path: Path) -> None:
    s = load_settings(environ={"MER_DATA_DIR": str(tmp_path)}, dotenv_path=tmp_path / "none")
    assert s.database_url is None
    assert s.resolved_database_url == f"sqlite+aiosqlite:///{tmp_path / 'mer.db'}"
    assert s.allow_edit is False


def test_precedence_dotenv_then_environment_then_flags(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "MER_DATABASE_URL=sqlite+aiosqlite:///from-dotenv.db\nMER_LOG_LEVEL=info\n"
        "MER_ALLOW_EDIT=1\n"
    )
    s = load_settings(environ={}, dotenv_path=env_file)
    assert s.database_url == "sqlite+aiosqlite:///from-dotenv.db"
    assert s.log_level == "INFO" and s.allow_edit is True

    s = load_settings(environ={"MER_LOG_LEVEL": "ERROR"}, dotenv_path=env_file)
    assert s.log_level == "ERROR"
    assert s.database_url == "sqlite+aiosqlite:///from-dotenv.db"

    s = load_settings(
        flags={"database_url": "postgresql+asyncpg://u@h/db", "allow_edit": None},
        environ={"MER_LOG_LEVEL": "ERROR"},
        dotenv_path=env_file,
    )
    assert s.database_url == "postgresql+asyncpg://u@h/db"
    assert s.allow_edit is True  # a flag left at None does not override


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("MER_ALLOW_EDIT", "maybe", "MER_ALLOW_EDIT"),
        ("MER_LOG_LEVEL", "loud", "MER_LOG_LEVEL"),
        ("MER_OUTPUT_CAP", "lots", "MER_OUTPUT_CAP"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, key: str, value: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle) as info:
        load_settings(environ={key: value}, dotenv_path=tmp_path / "none")
    assert info.value.exit_code == 2


def test_password_is_masked() -> None:
    assert mask_password("postgresql+asyncpg://mer:s3cret@db:5432/mer") == (
        "postgresql+asyncpg://mer:***@db:5432/mer"
    )
    assert mask_password("sqlite+aiosqlite:///x.db") == "sqlite+aiosqlite:///x.db"


def test_env_example_documents_every_key() -> None:
    text = (ROOT / ".env.example").read_text()
    missing = [k for k in ENV_KEYS if f"{k}=" not in text]
    assert missing == []


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgres://u:pw@h:5432/db", "postgresql+asyncpg://u:pw@h:5432/db"),
        ("postgresql://u@h/db?ssl=require", "postgresql+asyncpg://u@h/db?ssl=require"),
        ("POSTGRES://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("sqlite:///rel/mer.db", "sqlite+aiosqlite:///rel/mer.db"),
        ("sqlite:////abs/mer.db", "sqlite+aiosqlite:////abs/mer.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
    ],
)
def test_database_urls_map_to_the_async_drivers(given: str, used: str) -> None:
    assert database_url(given) == used
    assert Settings(database_url=given).resolved_database_url == used
    flags = load_settings(flags={"database_url": given}, environ={}, dotenv_path=Path("/nonexistent"))
    env = load_settings(environ={"MER_DATABASE_URL": given}, dotenv_path=Path("/nonexistent"))
    assert flags.database_url == env.database_url == used


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("mysql://u@h/db",
         "database URL scheme 'mysql' is not supported; use sqlite:///PATH or postgresql://..."),
        ("postgresql+psycopg2://u@h/db", "database URL scheme 'postgresql+psycopg2' is not supported"),
        ("not a url", "database URL 'not a url' is not a URL; use sqlite:///PATH"),
        ("://h/db", "is not a URL"),
    ],
)
def test_other_database_urls_are_one_config_error(given: str, message: str) -> None:
    nowhere = Path("/nonexistent")
    for load in (lambda: load_settings(flags={"database_url": given}, environ={}, dotenv_path=nowhere),
                 lambda: load_settings(environ={"MER_DATABASE_URL": given}, dotenv_path=nowhere)):
        with pytest.raises(ConfigError) as info:
            load()
        assert message in str(info.value) and info.value.exit_code == 2
