"""Edits that must not happen by accident: a person at the terminal answers yes/no, a
script gives the flag. The services decide what needs it (NeedsConfirmation names the
flag and the question); this module only asks."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from mer.errors import NeedsConfirmation, UsageError

if TYPE_CHECKING:
    from mer.shell.app import MerShell

__all__ = ["DECLINED", "ask", "confirm", "confirmed", "person_present"]

T = TypeVar("T")
DECLINED = ({"changed": False}, "nothing changed")  # the JSON image and the text of a no


def person_present(shell: MerShell) -> bool:
    """The interactive shell on a terminal: not a script, `-c` or piped commands, which
    must say what they mean with a flag."""
    return bool(shell.bridge.background) and shell.stdin.isatty()


def ask(shell: MerShell, question: str) -> bool:
    """yes/no; anything but y or yes (Ctrl-D included) is no."""
    try:
        answer = shell.read_input(f"{question} [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def confirm(shell: MerShell, question: str, yes: bool, flag: str = "--yes") -> bool:
    """A yes/no the shell asks itself (not a service): ``yes`` (the flag given) is yes;
    a person at the terminal answers; a script without the flag is an error naming it."""
    if yes:
        return True
    if not person_present(shell):
        raise UsageError(f"{question.rstrip('?')}: in a script, add {flag} to confirm")
    return ask(shell, question)


def confirmed(shell: MerShell, attempt: Callable[[set[str]], T], flags: set[str],
              on_yes: Callable[[NeedsConfirmation], None] = lambda err: None) -> T | None:
    """``attempt(flags)``; each NeedsConfirmation it raises is asked in a terminal and,
    on yes, tried again with its flag added (``on_yes`` first: the retry is checked
    against what the question showed). In a script it is the error. None: the person
    said no (the caller says that nothing changed: DECLINED)."""
    flags = set(flags)
    while True:
        try:
            return attempt(flags)
        except NeedsConfirmation as err:
            if err.flag in flags or not person_present(shell):
                raise
            if not ask(shell, err.question):
                return None
            on_yes(err)
            flags.add(err.flag)
