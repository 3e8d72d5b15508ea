"""How a line becomes a command: cmd2's statement parser made literal, and argument
parsers whose errors are one line.

cmd2 treats an unquoted ``;`` as the end of a command and ``|``/``>`` as redirection,
and drops what follows even with redirection off: ``model set m description a;b`` would
store ``a``. mer has no redirection, so every character after the command word is taken
literally, as the user typed it.
"""

from __future__ import annotations

import argparse
import re
from datetime import datetime, timedelta
from typing import NoReturn

from cmd2 import Cmd2ArgumentParser
from cmd2.parsing import Statement, StatementParser

from mer.domain import utcnow
from mer.errors import UsageError

__all__ = ["BadArguments", "LiteralStatementParser", "MerArgumentParser", "add_json",
           "parser", "since"]


class LiteralStatementParser(StatementParser):
    """A line is its command word and its shell-quoted words; no terminators, no
    redirection, no word split at punctuation."""

    def split_on_punctuation(self, tokens: list[str]) -> list[str]:
        return tokens

    def parse(self, line: str) -> Statement:
        command, args = self._command_and_args(self.tokenize(line))
        return Statement(args, raw=line, command=command)


class BadArguments(SystemExit):
    """What MerArgumentParser.error raises: argparse's way out (SystemExit, status 2),
    carrying the one line to show; MerShell.onecmd prints it."""

    def __init__(self, message: str) -> None:
        super().__init__(2)
        self.message = message


class MerArgumentParser(Cmd2ArgumentParser):
    """A command's parser whose errors are one line naming the command and its help,
    instead of argparse's usage block followed by the error."""

    def error(self, message: str) -> NoReturn:
        text = " ".join(message.split())
        raise BadArguments(f"{self.prog}: {text} (see `help {self.prog}`)")


def parser(description: str) -> Cmd2ArgumentParser:
    return MerArgumentParser(description=description)


def add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON for programs")


def since(text: str) -> datetime:
    """``30m``, ``2h``, ``1d`` ago, or an ISO time (local when it has no zone)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhd])", text.strip())
    if m:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[m.group(2)]
        return utcnow() - timedelta(**{unit: float(m.group(1))})
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"--since '{text}' is not a time; use e.g. 30m, 2h, 1d or 2026-11-24T10:00"
        ) from None
    return ts if ts.tzinfo else ts.astimezone()
