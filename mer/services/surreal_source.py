"""Read the original Rust MER's SurrealDB catalog: from a directory of its migration files
(``NN-Name.sql``, SurrealQL 1.x) run in an embedded in-memory SurrealDB, or from a
running SurrealDB server.

The ``surrealdb`` package is the optional extra ``mer[surreal]``; without it every reader
raises ConfigError naming the extra. Its errors (raised by the embedded engine as
RuntimeError, by the network clients as their own types) are translated here, by table,
into MerError; a statement that fails is not an error but a line of the catalog's
``failed`` list, naming its file and line.

Imports: mer.errors and mer.services.surrealql (surrealdb lazily).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mer.errors import ConfigError, MerError, UsageError
from mer.services.surrealql import Statement, split_statements

if TYPE_CHECKING:
    from surrealdb import AsyncEmbeddedSurrealConnection, AsyncHttpSurrealConnection, AsyncWsSurrealConnection

    Connection = AsyncEmbeddedSurrealConnection | AsyncHttpSurrealConnection | AsyncWsSurrealConnection

__all__ = ["DEFAULT_DATABASE", "DEFAULT_NAMESPACE", "EXTRA_HINT", "RustMerCatalog", "load_files",
           "migration_files", "read_directory", "read_server", "read_tables"]

# Where the Rust MER kept its catalog (its driver and migrations hard-code these).
DEFAULT_NAMESPACE = "ModelExecutorRuntimeNS"
DEFAULT_DATABASE = "ModelExecutorRuntimeDB"
EXTRA_HINT = "reading the Rust MER's SurrealDB needs the extra mer[surreal]: pip install 'mer[surreal]'"
CONNECT_TIMEOUT = 10.0  # seconds to reach a SurrealDB server

# The Rust MER's own migration runner took files named like this, in number order.
_MIGRATION = re.compile(r"(\d+)-(\w+)\.sql\Z")
_LET = re.compile(r"LET\s+\$(\w+)\s*(?::[^=]*)?=(.*)\Z", re.IGNORECASE | re.DOTALL)
_TRANSACTION = re.compile(r"(BEGIN|COMMIT)(\s+TRANSACTION)?\Z", re.IGNORECASE)
_WHERE = re.compile(r"-->\s*\[(\d+):\d+\]")
_PREFIX = "There was a problem with the database: "


@dataclass
class RustMerCatalog:
    """The Rust MER's tables as read: AvailableModels rows with their ConnTypeParams and
    ModelParams records fetched in place, ModelWeights and ModelAccess rows."""

    source: str
    models: list[dict[str, Any]] = field(default_factory=list)
    weights: list[dict[str, Any]] = field(default_factory=list)
    access: list[dict[str, Any]] = field(default_factory=list)
    files: int = 0
    statements: int = 0
    rewrites: int = 0  # 1.x forms rewritten for 2.x
    failed: list[str] = field(default_factory=list)  # "FILE:LINE: statement: error"
    notes: list[str] = field(default_factory=list)


def _surrealdb() -> Any:
    try:
        import surrealdb
    except ImportError as err:
        raise ConfigError(EXTRA_HINT) from err
    return surrealdb


def _library_errors() -> tuple[type[BaseException], ...]:
    """What the SurrealDB clients raise for a failure of the server or of the request."""
    sdb = _surrealdb()
    errors: list[type[BaseException]] = [sdb.SurrealError, RuntimeError, ValueError]
    for module, name in (("websockets.exceptions", "WebSocketException"), ("aiohttp", "ClientError")):
        try:
            errors.append(getattr(__import__(module, fromlist=[name]), name))
        except (ImportError, AttributeError):
            pass
    return tuple(errors)


def _message(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    text = text.removeprefix(_PREFIX)
    return text.splitlines()[0].strip()


@contextmanager
def _map_errors(what: str) -> Iterator[None]:
    """SurrealDB's exceptions as one MerError line (the table: unreachable, timed out,
    refused by the server)."""
    try:
        yield
    except MerError:
        raise
    except TimeoutError as err:
        raise MerError(f"{what}: no answer within {CONNECT_TIMEOUT:g} s") from err
    except OSError as err:
        raise MerError(f"{what}: {err.strerror or err}") from err
    except _library_errors() as err:
        raise MerError(f"{what}: {_message(err)}") from err


def migration_files(directory: Path) -> tuple[list[Path], list[str]]:
    """The ``NN-Name.sql`` files of ``directory`` in number order, and a note for each
    other ``.sql`` file (skipped, as the Rust MER skipped it). Raises UsageError."""
    if not directory.is_dir():
        raise UsageError(f"{directory} is not a directory of Rust MER migration files "
                         f"(NN-Name.sql) nor a SurrealDB URL (ws://HOST:PORT)")
    found, notes = [], []
    for path in sorted(directory.iterdir()):
        match = _MIGRATION.match(path.name)
        if match:
            found.append((int(match.group(1)), path.name, path))
        elif path.suffix == ".sql":
            notes.append(f"{path.name}: skipped: not named NN-Name.sql")
    if not found:
        raise UsageError(f"{directory} holds no Rust MER migration files (NN-Name.sql)")
    return [p for _, _, p in sorted(found)], notes


async def _execute(conn: Connection, statement: Statement, params: dict[str, Any]) -> str | None:
    """Run one statement; the error's first line when it fails, else None.

    A ``LET`` is evaluated here and its value kept in ``params``: each statement is its
    own request (so that one failing is named and skipped, not its whole file's
    transaction), and a request's variables do not outlive it."""
    text = statement.text
    let = _LET.match(text)
    query = f"RETURN ({let.group(2).strip()})" if let else text
    try:
        response = await conn.query_raw(query, dict(params))
    except _library_errors() as err:
        message = _message(err)
        where = _WHERE.search(str(err))
        if where and int(where.group(1)) > 1:  # the line inside a multi-line statement
            message += f" (at line {statement.line + int(where.group(1)) - 1})"
        return message
    if response.get("error"):
        return _message(Exception(response["error"].get("message", response["error"])))
    results = response.get("result") or []
    failed = [r for r in results if r.get("status") == "ERR"]
    if failed:
        return str(failed[0].get("result")).splitlines()[0]
    if let and results:
        params[let.group(1)] = results[0].get("result")
    return None


async def load_files(conn: Connection, files: list[Path], catalog: RustMerCatalog) -> None:
    """Run ``files`` in order on ``conn``, statement by statement, noting in ``catalog``
    the statements, the rewrites and each statement that failed. Raises UsageError for
    a file that cannot be read."""
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise UsageError(f"cannot read {path}: {getattr(err, 'strerror', None) or err}") from err
        params: dict[str, Any] = {}
        catalog.files += 1
        for statement in split_statements(text):
            catalog.rewrites += statement.rewrites
            # NOTE: statements run one by one, each committed on its own: BEGIN and
            # COMMIT have nothing left to group.
            if _TRANSACTION.match(statement.text):
                continue
            catalog.statements += 1
            error = await _execute(conn, statement, params)
            if error is not None:
                catalog.failed.append(f"{path.name}:{statement.line}: {statement.head}: {error}")


_QUERIES = {
    "models": "SELECT * FROM AvailableModels FETCH connTypeParams, modelParams",
    "weights": "SELECT * FROM ModelWeights",
    "access": "SELECT * FROM ModelAccess",
}


async def read_tables(conn: Connection, catalog: RustMerCatalog) -> RustMerCatalog:
    """Fill ``catalog`` with the Rust MER's tables as ``conn`` holds them."""
    for name, query in _QUERIES.items():
        rows = await conn.query(query)
        setattr(catalog, name, [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else [])
    return catalog


async def read_directory(directory: Path) -> RustMerCatalog:
    """Run the migration files of ``directory`` in an embedded in-memory SurrealDB and
    read the catalog they make. Raises UsageError, ConfigError (no mer[surreal]), MerError."""
    files, notes = migration_files(directory)
    sdb = _surrealdb()
    catalog = RustMerCatalog(source=str(directory), notes=notes)
    with _map_errors("the embedded SurrealDB failed"):
        conn = sdb.AsyncSurreal("mem://")
        await conn.connect()
        try:
            await conn.use(DEFAULT_NAMESPACE, DEFAULT_DATABASE)
            await load_files(conn, files, catalog)
            return await read_tables(conn, catalog)
        finally:
            await conn.close()


async def read_server(url: str, namespace: str | None = None, database: str | None = None,
                      user: str | None = None, password: str | None = None) -> RustMerCatalog:
    """Read the catalog from a SurrealDB server (``ws://``, ``wss://``, ``http(s)://``, or
    an embedded store such as ``surrealkv://PATH``), signing in as ``user`` when given.
    Raises ConfigError (no mer[surreal]), MerError (unreachable, refused)."""
    sdb = _surrealdb()
    catalog = RustMerCatalog(source=url)
    with _map_errors(f"cannot read the Rust MER's SurrealDB at {url}"):
        conn = sdb.AsyncSurreal(url)
        await asyncio.wait_for(conn.connect(), CONNECT_TIMEOUT)
        try:
            if user is not None:
                await conn.signin({"username": user, "password": password or ""})
            await conn.use(namespace or DEFAULT_NAMESPACE, database or DEFAULT_DATABASE)
            return await read_tables(conn, catalog)
        finally:
            await conn.close()
