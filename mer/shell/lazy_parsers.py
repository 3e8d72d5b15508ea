"""Verbs attached to their noun's parser when the noun is first used, not at start.

cmd2 attaches every ``as_subcommand_to`` verb as soon as its command set is registered,
which builds each noun's parser and every verb's: work a `mer -c "run m"` never needs
for `model`, `weights` or `server`. mer registers its command sets whole but defers each
set's verbs until cmd2 first asks for the parser of a noun the set adds verbs to (to
parse, complete or help it); then cmd2's own ``_register_subcommands`` attaches them.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from cmd2 import Cmd, CommandSet, constants
from cmd2.cmd2 import CommandParsers

if TYPE_CHECKING:
    from cmd2 import Cmd2ArgumentParser

__all__ = ["LazyVerbParsers", "nouns_of"]


def nouns_of(owner: CommandSet) -> set[str]:
    """The commands ``owner`` adds verbs to."""
    specs = (getattr(m, constants.SUBCOMMAND_ATTR_SPEC) for _, m in inspect.getmembers(
        owner, lambda m: callable(m) and hasattr(m, constants.SUBCOMMAND_ATTR_SPEC)))
    return {spec.command.split()[0] for spec in specs}


class LazyVerbParsers(CommandParsers):
    """cmd2's parser store, which first attaches the verbs waiting for a noun."""

    def __init__(self, app: Cmd, built: CommandParsers) -> None:
        super().__init__(app)
        self._parsers.update(built._parsers)  # cmd2's own, built while it started
        self._waiting: dict[str, list[CommandSet]] = {}

    def defer(self, owner: CommandSet) -> None:
        for noun in nouns_of(owner):
            self._waiting.setdefault(noun, []).append(owner)

    def get(self, command_method: Any) -> Cmd2ArgumentParser | None:
        noun = getattr(command_method, "__name__", "").removeprefix(constants.COMMAND_FUNC_PREFIX)
        for owner in self._waiting.pop(noun, ()):
            # A set may add verbs to several nouns: it is attached once, for all of them.
            for owners in self._waiting.values():
                if owner in owners:
                    owners.remove(owner)
            Cmd._register_subcommands(self._cmd_app, owner)  # cmd2's own, not the shell's
        return super().get(command_method)
