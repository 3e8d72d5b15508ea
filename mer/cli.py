"""Process entry points `mer` (placeholder until the shell lands; `mer-migrate` is mer/cli_migrate.py)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("mer: the shell is not built yet", file=sys.stderr)
    return 1
