"""`mer-migrate up|down|status|sync`: run the schema migrations, seed the database from
the model catalog, and (sync) show or apply what the catalog would change.

Exit status: 0 done, 1 a failure (database unreachable, migration failed), 2 a usage or
configuration error (bad flags, bad URL, malformed catalog). Errors are one line on
stderr; MER_LOG_LEVEL=DEBUG adds the traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

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
    p.add_argument("--database-url", help="SQLAlchemy URL (default: MER_DATABASE_URL or "
                   "the embedded SQLite database)")
    sub = p.add_subparsers(dest="action", required=True, metavar="{up,down,status,sync}")
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
    return p


async def _main(args: argparse.Namespace, settings: Settings) -> None:
    from mer.db.engine import create_engine
    from mer.db.migrate import downgrade, status, upgrade

    engine = create_engine(settings.resolved_database_url)
    try:
        if args.action == "status":
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
