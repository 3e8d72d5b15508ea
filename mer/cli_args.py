"""The argument parser of mer's own commands (`mer`, `mer-migrate`): a bad flag is one
line on stderr naming what was wrong and where to look, exit status 2, as every other
error of mer (argparse prints its whole usage block first)."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

__all__ = ["OneLineParser"]


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        text = " ".join(message.split())
        print(f"{self.prog}: error: {text} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(2)
