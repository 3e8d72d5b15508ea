"""`mer-migrate up|down|status|sync`: run the schema migrations, seed the database from
the model catalog, and (sync) show or apply what the catalog would change;
`mer-migrate import-mer SOURCE`: bring over the Rust MER's SurrealDB catalog.

Exit status: 0 done, 1 a failure (database unreachable, migration failed), 2 a usage or
configuration error (bad flags, bad URL, malformed catalog). Errors are one line on
stderr; MER_LOG_LEVEL=DEBUG adds the traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys
from pathlib import Path
from typing import Any

from mer import __version__
from mer.cli_args import OneLineParser
from mer.config import Settings, load_settings
from mer.errors import MerError, UsageError

__all__ = ["main"]

log = logging.getLogger("mer.migrate")


def _parser() -> OneLineParser:
    p = OneLineParser(
        prog="mer-migrate",
        description="Migrate the MER database schema and load the model catalog.",
    )
    p.add_argument("--database-url", help="sqlite:///PATH or postgresql://USER@HOST/DB (default: "
                   "MER_DATABASE_URL or the embedded SQLite database)")
    p.add_argument("--version", action="version", version=f"mer-migrate {__version__}")
    sub = p.add_subparsers(dest="action", required=True, metavar="{up,down,status,sync,import-mer}")
    up = sub.add_parser("up", help="apply pending migrations, then add what the catalog has "
                        "and the database lacks (nothing that exists is changed)")
    up.add_argument("--steps", type=int, help="apply only N migrations")
    up.add_argument("--catalog", type=Path, help="TOML model catalog to load (default: MER_CATALOG)")
    up.add_argument("--if-new", action="store_true",
                    help="load the catalog only into a new database (one this run created)")
    down = sub.add_parser("down", help="revert migrations (one by default)")
    group = down.add_mutually_exclusive_group()
    group.add_argument("--steps", type=int, default=1, help="revert N migrations (default 1)")
    group.add_argument("--all", action="store_true", help="revert every migration")
    sub.add_parser("status", help="show the current and pending revisions")
    sync = sub.add_parser("sync", help="show what the catalog would change in the database, "
                          "entry by entry; --apply makes the changes (audited edits)")
    sync.add_argument("--catalog", type=Path, help="TOML model catalog (default: MER_CATALOG)")
    sync.add_argument("--apply", action="store_true", help="make the changes")
    _import_mer_parser(sub)
    return p


# --- import-mer: the Rust MER's SurrealDB catalog (mer/services/mer_import.py) -------------

def _import_mer_parser(sub: Any) -> None:
    imp = sub.add_parser(
        "import-mer", help="import the Rust MER's SurrealDB catalog (a dry run unless --apply)",
        description="Map the Rust MER's models, servers, weights (and access log) into mer. "
        "Without --apply it prints the mapping and changes nothing.")
    imp.add_argument("source", help="a directory of the Rust MER's migration files (NN-Name.sql) or "
                     "a SurrealDB URL (ws://HOST:8000)")
    imp.add_argument("--apply", action="store_true", help="write the import, in one transaction")
    imp.add_argument("--with-history", action="store_true",
                     help="also import ModelAccess rows as access-log records")
    imp.add_argument("--overwrite", action="store_true",
                     help="replace mer's entries of the same name whose content differs")
    imp.add_argument("--namespace", help="namespace of a URL source (default ModelExecutorRuntimeNS)")
    imp.add_argument("--database", help="database of a URL source (default ModelExecutorRuntimeDB)")
    imp.add_argument("--user", help="SurrealDB user of a URL source; the password comes from "
                     "MER_SURREAL_PASSWORD or a prompt and is never stored")
    imp.set_defaults(handler=_import_mer)


def _surreal_password(user: str) -> str:
    # NOTE: read here, not through Settings: a secret for this one command that must never
    # reach a settings dump, a log line or the database.
    password = os.environ.get("MER_SURREAL_PASSWORD")
    if password is not None:
        return password
    if not sys.stdin.isatty():
        raise UsageError(f"no password for SurrealDB user '{user}': set MER_SURREAL_PASSWORD "
                         f"(there is no terminal to prompt on)")
    return getpass.getpass(f"SurrealDB password for {user}: ")


async def _import_mer(args: argparse.Namespace, engine: Any) -> None:
    from mer.db.migrate import status
    from mer.db.uow import make_uow_factory
    from mer.services import surreal_source
    from mer.services.mer_import import import_mer

    is_url = "://" in args.source
    if not is_url and (args.namespace or args.database or args.user):
        raise UsageError("--namespace, --database and --user apply to a SurrealDB URL, not a directory")
    if (await status(engine)).pending:
        raise UsageError("the mer database is not at the newest schema; run `mer-migrate up` first")
    if is_url:
        password = _surreal_password(args.user) if args.user else None
        catalog = await surreal_source.read_server(args.source, args.namespace, args.database,
                                                   args.user, password)
    else:
        catalog = await surreal_source.read_directory(Path(args.source))
    report = await import_mer(catalog, make_uow_factory(engine), apply=args.apply,
                              overwrite=args.overwrite, with_history=args.with_history)
    for note in catalog.notes:
        print(f"mer-migrate: note: {note}", file=sys.stderr)
    for failed in catalog.failed:
        print(f"mer-migrate: warning: statement failed, skipped: {failed}", file=sys.stderr)
    for warning in report.warnings:
        print(f"mer-migrate: warning: {warning}", file=sys.stderr)
    if not is_url:
        print(f"read {catalog.files} files, {catalog.statements} statements "
              f"({catalog.rewrites} rewritten for SurrealDB 2, {len(catalog.failed)} failed)")
    print("\n".join(report.lines()))

# --- end of import-mer ---------------------------------------------------------------------


async def _main(args: argparse.Namespace, settings: Settings) -> None:
    from mer.db.engine import create_engine
    from mer.db.migrate import downgrade, status, upgrade

    engine = create_engine(settings.resolved_database_url)
    try:
        if getattr(args, "handler", None) is not None:
            await args.handler(args, engine)
        elif args.action == "status":
            st = await status(engine)
            print(f"database: {settings.safe_database_url}")
            print(f"current:  {st.current or '(empty)'}")
            print(f"head:     {st.head}")
            print(f"pending:  {', '.join(st.pending) if st.pending else 'none'}")
        elif args.action == "up":
            new = args.if_new and (await status(engine)).current is None
            applied = await upgrade(engine, steps=args.steps)
            print(f"applied {', '.join(applied)}" if applied else "already at head")
            catalog = args.catalog or settings.catalog
            if catalog is not None and args.if_new and not new:
                print(f"catalog {catalog}: not loaded into an existing database "
                      f"(`mer-migrate sync --catalog {catalog}` shows what it would change)")
            elif catalog is not None:
                from mer.db.catalog import load_catalog
                from mer.db.uow import make_uow_factory

                report = await load_catalog(catalog, make_uow_factory(engine),
                                            _executors(settings).kinds())
                print(f"catalog {catalog}: {report.summary()}")
        elif args.action == "sync":
            await _sync(engine, settings, args.catalog or settings.catalog, args.apply)
        else:
            reverted = await downgrade(engine, steps=None if args.all else args.steps)
            print(f"reverted {', '.join(reverted)}" if reverted else "nothing to revert")
    finally:
        await engine.dispose()


def _executors(settings: Settings) -> Any:
    from mer.execution.registry import ExecutorRegistry

    return ExecutorRegistry(known_hosts=str(settings.resolved_known_hosts))


async def _sync(engine: Any, settings: Settings, catalog: Path | None, apply: bool) -> None:
    from mer.db.migrate import status
    from mer.db.uow import make_uow_factory
    from mer.services.catalog_sync import apply_sync, plan_sync
    from mer.services.context import ServiceContext

    if catalog is None:
        raise UsageError("sync needs --catalog FILE (or MER_CATALOG)")
    pending = (await status(engine)).pending
    if pending:
        raise UsageError(f"the database is not at the newest schema (pending: {', '.join(pending)}); "
                         "run `mer-migrate up` first")
    # The admin's own act: the edits are theirs (the OS user), made through the services.
    ctx = ServiceContext(uow=make_uow_factory(engine), executors=_executors(settings),
                         allow_edit=apply)
    plan = await plan_sync(ctx, catalog)
    if not plan.steps:
        print(f"catalog {catalog}: the database already matches it; nothing to change")
        return
    if not apply:
        print("\n".join(plan.lines))
        print(f"catalog {catalog}: {len(plan.lines)} change(s); `mer-migrate sync --apply "
              f"--catalog {catalog}` makes them, as audited edits by {ctx.actor}")
        return
    made = await apply_sync(ctx, plan, done=lambda step: print("\n".join(step.lines), flush=True))
    print(f"catalog {catalog}: {made} edit(s) made by {ctx.actor}, in the audit log")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)  # exits 2 on bad flags
    try:
        settings = load_settings({"database_url": args.database_url})
        logging.basicConfig(level=settings.log_level, stream=sys.stderr)
        asyncio.run(_main(args, settings))
    except MerError as err:
        log.debug("mer-migrate failed", exc_info=True)
        print(f"mer-migrate: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("mer-migrate: cancelled", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
