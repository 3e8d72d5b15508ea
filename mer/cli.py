"""Process entry points `mer` and `mer-migrate` (placeholder until the shell lands)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("mer: the shell is not built yet", file=sys.stderr)
    return 1


def migrate_main(argv: list[str] | None = None) -> int:
    print("mer-migrate: not built yet", file=sys.stderr)
    return 1
