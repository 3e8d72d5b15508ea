"""How a line becomes a command: cmd2's statement parser made literal, and argument
parsers whose errors are one line.

cmd2 treats an unquoted ``;`` as the end of a command and ``|``/``>`` as redirection,
and drops what follows even with redirection off: ``model set m description a;b`` would
store ``a``. mer has no redirection, so every character after the command word is taken
literally, as the user typed it.

Every command is parsed, so both take shortcuts where they give what the long way gives
(tests/shell/test_parsing_shortcuts.py): a line of plain words is split without shlex,
its words are not split a second time for argparse, and words that are only a command's
positionals skip argparse's matching of every option.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn

from cmd2 import Cmd2ArgumentParser
from cmd2.parsing import Statement, StatementParser
from cmd2.string_utils import strip_quotes

from mer.errors import UsageError

__all__ = ["BadArguments", "Later", "LiteralStatementParser", "MerArgumentParser", "ParserRecipe",
           "add_json", "parser", "since"]


class LiteralStatementParser(StatementParser):
    """A line is its command word and its shell-quoted words; no terminators, no
    redirection, no word split at punctuation."""

    _last: tuple[Statement | None, list[str]] = (None, [])  # the statement parsed last, its words

    def split_on_punctuation(self, tokens: list[str]) -> list[str]:
        return tokens

    def tokenize(self, line: str) -> list[str]:
        # NOTE: a line of plain words (no quote, no whitespace but spaces, no comment)
        # is what shlex splits it into, split by str.split: shlex, in Python, was a
        # third of parsing a command.
        expanded = self._expand(line)
        if (expanded.isprintable() and "'" not in expanded and '"' not in expanded
                and not expanded.lstrip().startswith("#")):
            return expanded.split()
        return super().tokenize(line)

    def parse(self, line: str) -> Statement:
        tokens = self.tokenize(line)
        command, args = self._command_and_args(tokens)
        statement = Statement(args, raw=line, command=command)
        self._last = (statement, tokens[1:])
        return statement

    def get_command_arg_list(self, command_name: str, to_parse: Statement | str,
                             preserve_quotes: bool) -> tuple[Statement, list[str]]:
        """The words of the statement parsed last as its tokens were, not split again."""
        statement, words = self._last
        if to_parse is not statement or not words:
            return super().get_command_arg_list(command_name, to_parse, preserve_quotes)
        return statement, list(words) if preserve_quotes else [strip_quotes(w) for w in words]


class BadArguments(SystemExit):
    """What MerArgumentParser.error raises: argparse's way out (SystemExit, status 2),
    carrying the one line to show; MerShell.onecmd prints it."""

    def __init__(self, message: str) -> None:
        super().__init__(2)
        self.message = message


class MerArgumentParser(Cmd2ArgumentParser):
    """A command's parser whose errors are one line naming the command and its help,
    instead of argparse's usage block followed by the error.

    Words that are exactly the parser's positionals, none of them an option (``run m``,
    ``runs show 3b1b``), skip argparse's pattern matching over every option: ~40 µs of
    each such command on a parser of 16 options. The namespace is argparse's own: its
    defaults, each word converted and checked as argparse does."""

    _shortcut: tuple[Any, _Shortcut | None] = (None, None)  # (what it was worked out for, it)

    def error(self, message: str) -> NoReturn:
        text = " ".join(message.split())
        raise BadArguments(f"{self.prog}: {text} (see `help {self.prog}`)")

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        shortcut = self.shortcut()
        if (shortcut is None or args is None or namespace is not None
                or len(args) != len(shortcut.positionals)
                or any(not isinstance(w, str) or w[:1] in self.prefix_chars for w in args)):
            return super().parse_known_args(args, namespace)
        namespace = argparse.Namespace(**shortcut.defaults)
        try:
            for action, word in zip(shortcut.positionals, args, strict=True):
                action(self, namespace, self._get_values(action, [word]))
            for action in shortcut.text_defaults:  # converted as argparse does
                if getattr(namespace, action.dest, None) is action.default:
                    setattr(namespace, action.dest, self._get_value(action, str(action.default)))
        except argparse.ArgumentError as err:
            self.error(str(err))
        return namespace, []

    def shortcut(self) -> _Shortcut | None:
        """How words that are only this parser's positionals are parsed, when one word
        each is all it can take without an option: none required, no subcommands, no
        group rules, no @file words. Worked out again when the parser changed."""
        key = (len(self._actions), tuple(self._defaults.items()))
        if self._shortcut[0] == key:
            return self._shortcut[1]
        grouped = {a for g in self._mutually_exclusive_groups for a in g._group_actions}
        options = [a for a in self._actions if a.option_strings]
        plain = [a for a in self._actions if not a.option_strings]
        simple = (self.fromfile_prefix_chars is None
                  and all(a.nargs is None and a not in grouped and a.dest is not argparse.SUPPRESS
                          for a in plain)
                  and not any(a.required for a in options)
                  and not any(g.required for g in self._mutually_exclusive_groups))
        found = None
        if simple:
            defaults: dict[str, Any] = {}  # argparse's: an action's, then the parser's
            for action in self._actions:
                if action.default is not argparse.SUPPRESS:
                    defaults.setdefault(action.dest, action.default)
            for dest, value in self._defaults.items():
                defaults.setdefault(dest, value)
            found = _Shortcut(plain, defaults, [a for a in options if isinstance(a.default, str)])
        self._shortcut = (key, found)
        return found


@dataclass(frozen=True)
class _Shortcut:
    positionals: list[argparse.Action]
    defaults: dict[str, Any]  # the namespace argparse starts from
    text_defaults: list[argparse.Action]  # options whose default is text to convert


class Later:
    """An argument of a parser call made when the parser is built, e.g. choices that a
    service module (loaded on first use) knows: ``choices=Later(lambda: ...)``."""

    def __init__(self, make: Any) -> None:
        self.make = make


class _Calls:
    """The calls made on a parser (or one of its argument groups), to make again later."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any], _Calls]] = []

    def _record(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Calls:
        group = _Calls()
        self.calls.append((name, args, kwargs, group))
        return group

    def add_argument(self, *args: Any, **kwargs: Any) -> None:
        self._record("add_argument", args, kwargs)

    def add_mutually_exclusive_group(self, **kwargs: Any) -> _Calls:
        return self._record("add_mutually_exclusive_group", (), kwargs)

    def add_argument_group(self, *args: Any, **kwargs: Any) -> _Calls:
        return self._record("add_argument_group", args, kwargs)

    def add_subparsers(self, **kwargs: Any) -> None:
        self._record("add_subparsers", (), kwargs)

    def set_defaults(self, **kwargs: Any) -> None:
        self._record("set_defaults", (), kwargs)

    def replay(self, target: Any) -> None:
        for name, args, kwargs, group in self.calls:
            now = {k: v.make() if isinstance(v, Later) else v for k, v in kwargs.items()}
            made = getattr(target, name)(*args, **now)
            if group.calls:
                group.replay(made)


class ParserRecipe(_Calls):
    """A command's parser, written down at import and built only when cmd2 first needs
    it: cmd2 takes a factory as a parser source and calls it when the command is first
    parsed, completed or helped. Building ~40 argparse parsers (and cmd2's deep copy of
    each instance) at every start was a third of mer's start-up over a bare cmd2 app."""

    def __init__(self, description: str) -> None:
        super().__init__()
        self.description = description

    def __call__(self) -> Cmd2ArgumentParser:
        built = MerArgumentParser(description=self.description)
        self.replay(built)
        return built


def parser(description: str) -> ParserRecipe:
    return ParserRecipe(description)


def add_json(p: _Calls) -> None:
    p.add_argument("--json", action="store_true", help="print JSON for programs")


def since(text: str, flag: str = "--since") -> datetime:
    """``30m``, ``2h``, ``1d`` ago, or an ISO time (local when it has no zone); ``flag``
    names the option in the error."""
    from mer.domain import utcnow

    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhd])", text.strip())
    if m:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[m.group(2)]
        return utcnow() - timedelta(**{unit: float(m.group(1))})
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"{flag} '{text}' is not a time; use e.g. 30m, 2h, 1d or 2026-11-24T10:00"
        ) from None
    return ts if ts.tzinfo else ts.astimezone()
