"""`mer-migrate up|down|status`: run the schema migrations and load the model catalog.

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

from mer import __version__
from mer.cli_args import OneLineParser
from mer.config import Settings, load_settings
from mer.errors import MerError

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
    sub = p.add_subparsers(dest="action", required=True, metavar="{up,down,status}")
    up = sub.add_parser("up", help="apply pending migrations, then load the catalog")
    up.add_argument("--steps", type=int, help="apply only N migrations")
    up.add_argument("--catalog", type=Path, help="TOML model catalog to load (default: MER_CATALOG)")
    down = sub.add_parser("down", help="revert migrations (one by default)")
    group = down.add_mutually_exclusive_group()
    group.add_argument("--steps", type=int, default=1, help="revert N migrations (default 1)")
    group.add_argument("--all", action="store_true", help="revert every migration")
    sub.add_parser("status", help="show the current and pending revisions")
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
            applied = await upgrade(engine, steps=args.steps)
            print(f"applied {', '.join(applied)}" if applied else "already at head")
            catalog = args.catalog or settings.catalog
            if catalog is not None:
                from mer.db.catalog import load_catalog
                from mer.db.uow import make_uow_factory

                report = await load_catalog(catalog, make_uow_factory(engine))
                print(f"catalog {catalog}: {report.summary()}")
        else:
            reverted = await downgrade(engine, steps=None if args.all else args.steps)
            print(f"reverted {', '.join(reverted)}" if reverted else "nothing to revert")
    finally:
        await engine.dispose()


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
