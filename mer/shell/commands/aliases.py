"""`model alias M ALIAS VERSION` and `model unalias M ALIAS`: verbs of the `model` noun
(registered after ModelCommands, which owns the noun), kept apart because they are the
aliases' own use cases (mer/services/aliases.py)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from cmd2 import Choices

from mer.lazy import lazy_module
from mer.shell.commands.base import MerCommands, _model_typed, verb
from mer.shell.parsing import add_json, parser

if TYPE_CHECKING:
    from mer.services import aliases as alias_svc
else:
    alias_svc = lazy_module("mer.services.aliases")

__all__ = ["AliasCommands"]


class _Providers(MerCommands):
    """Tab's providers of these verbs (defined before their parsers, which name them)."""

    def _versions(self, arg_tokens: dict[str, list[str]]) -> Choices:
        return Choices.from_values(self._cmd.cache.versions(_model_typed(arg_tokens)))

    def _aliases(self, arg_tokens: dict[str, list[str]]) -> Choices:
        return Choices.from_values(self._cmd.cache.aliases(_model_typed(arg_tokens)))


_alias = parser("Point an alias at a version: `model alias m live 3` makes `m@live` name "
                "`m@3` (a new alias, or one moved, in one audited edit). `run m@live`, "
                "`show m@live` and every other command that takes a model take it.")
_alias.add_argument("model", completer=MerCommands._models, help="the model's NAME")
_alias.add_argument("alias", help="the alias: starts with a letter (live, prod, staging)")
_alias.add_argument("version", choices_provider=_Providers._versions,
                    help="the VERSION it names (or another alias: where that one points)")
add_json(_alias)

_unalias = parser("Remove an alias (the version it named stays).")
_unalias.add_argument("model", completer=MerCommands._models, help="the model's NAME")
_unalias.add_argument("alias", choices_provider=_Providers._aliases)
add_json(_unalias)


class AliasCommands(_Providers):

    @verb("model", "alias", _alias, edits=True)
    def model_alias(self, args: argparse.Namespace) -> None:
        done = self.call(alias_svc.set_alias(self.ctx(), args.model, args.alias, args.version))
        a = done.alias
        if done.unchanged:
            text = f"{a.ref} -> {a.target} (unchanged)"
        elif done.before is None:
            text = f"{a.ref} -> {a.target}"
        else:
            text = f"{a.ref} -> {a.target} (was {a.name}@{done.before})"
        self.emit(args, {"model": a.name, "alias": a.alias, "version": a.version,
                         "before": done.before, "unchanged": done.unchanged}, text)

    @verb("model", "unalias", _unalias, edits=True)
    def model_unalias(self, args: argparse.Namespace) -> None:
        gone = self.call(alias_svc.remove_alias(self.ctx(), args.model, args.alias))
        self.emit(args, {"removed": gone.ref, "version": gone.version},
                  f"removed {gone.ref} (it named {gone.target})")
