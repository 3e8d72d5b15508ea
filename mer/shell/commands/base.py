"""What every command set shares: the way to the shell (service calls, output, the
views it has seen), the two decorators that make a command, and Tab's providers.

A command is ``@command(parser, category)`` on ``do_NOUN``; a verb of a noun is
``@verb(NOUN, VERB, parser)``. Both turn a MerError into one line on stderr and an exit
status; an edit verb (``edits=True``) is refused without --allow-edit before it runs.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

import cmd2
from cmd2 import Choices, CommandSet, Completions, with_argparser

from mer.errors import EXIT_INTERRUPTED, EditNotAllowed, MerError
from mer.shell import render
from mer.shell.parsing import ParserRecipe

if TYPE_CHECKING:
    from mer.services.context import ServiceContext
    from mer.shell.app import MerShell
    from mer.shell.seen import SeenViews

__all__ = ["EDIT_NOTE", "MerCommands", "command", "verb"]

F = TypeVar("F", bound=Callable[..., Any])
EDIT_NOTE = " (needs --allow-edit)"


def _reports(fn: F) -> F:
    """Turn errors raised by a command into one line on stderr and an exit status."""

    @functools.wraps(fn)
    def wrapper(self: MerCommands, *args: Any) -> Any:
        shell = self.shell
        try:
            return fn(self, *args)
        except MerError as err:
            shell.fail(f"error: {err}", err.exit_code)
        except KeyboardInterrupt:
            shell.fail("cancelled", EXIT_INTERRUPTED)
        except Exception as err:  # a bug in mer, not the user's mistake
            shell.internal_error(err, fn.__name__)
        return None

    return cast(F, wrapper)


def command(parser: ParserRecipe, category: str) -> Callable[[F], F]:
    """A top-level command: its parser, its help category, one-line errors."""

    def decorate(fn: F) -> F:
        return cast(F, with_argparser(parser)(cmd2.with_category(category)(_reports(fn))))

    return decorate


def verb(noun: str, name: str, parser: ParserRecipe, *, edits: bool = False,
         aliases: tuple[str, ...] = ()) -> Callable[[F], F]:
    """A verb of a noun (``model set``). An edit verb is listed with a note and refused
    without --allow-edit (the services refuse it too)."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def gated(self: MerCommands, args: argparse.Namespace) -> Any:
            if edits and not self.shell.allow_edit:
                raise EditNotAllowed()
            return fn(self, args)

        summary = str(parser.description or "").split(". ")[0].rstrip(".")
        help_text = summary + (EDIT_NOTE if edits else "")
        return cast(F, cmd2.as_subcommand_to(noun, name, parser, help=help_text,
                                             aliases=aliases)(_reports(gated)))

    return decorate


def dispatch(self: MerCommands, args: argparse.Namespace) -> None:
    """A noun's handler: run the verb argparse chose."""
    args.cmd2_subcommand_func(args)


class MerCommands(CommandSet["MerShell"]):
    """Base of mer's command sets."""

    # NOTE: no properties here: cmd2 reads every attribute of a command set when it
    # registers it, and the services' context starts the runtime when read.
    shell: MerShell
    seen: SeenViews

    def on_register(self, cmd: MerShell) -> None:
        super().on_register(cmd)
        self.shell, self.seen = cmd, cmd.seen

    def ctx(self) -> ServiceContext:
        """The services' context (the first call waits for the runtime to be built)."""
        return self._cmd.ctx

    def call(self, coro: Any) -> Any:
        return self._cmd.call(coro)

    def out(self, text: str) -> None:
        self._cmd.out(text)

    def show(self, text: str | render.Table) -> None:
        self._cmd.show(text)

    def want_json(self, args: argparse.Namespace) -> bool:
        return self._cmd.json_output or bool(getattr(args, "json", False))

    def emit(self, args: argparse.Namespace, image: Any,
             text: str | render.Table | Callable[[], str | render.Table]) -> None:
        """Print ``image`` as one line of JSON under --json, else the text for people
        (a table fitted to the terminal when there is one)."""
        if self.want_json(args):
            self.out(render.dumps(image))
        else:
            self.show(text() if callable(text) else text)

    # -- Tab: read the completion cache only, never the database ----------------------
    # NOTE: models are a completer, not a choices provider, because what is offered
    # depends on the word typed so far: `lin` offers `linear` once, `linear@` its versions.

    def _models(self, text: str, line: str, begidx: int, endidx: int) -> Completions:
        return self._cmd.basic_complete(text, line, begidx, endidx,
                                        self._cmd.cache.models(text))

    def _servers_and_models(self, text: str, line: str, begidx: int, endidx: int) -> Completions:
        cache = self._cmd.cache
        return self._cmd.basic_complete(text, line, begidx, endidx,
                                        cache.servers + cache.models(text))

    def _servers(self) -> Choices:
        return Choices.from_values(self._cmd.cache.servers)

    def _fields(self) -> Choices:
        return Choices.from_values(self._cmd.cache.fields)

    def _params(self, arg_tokens: dict[str, list[str]]) -> Choices:
        return Choices.from_values(self._cmd.cache.params(_model_typed(arg_tokens)))

    def _weights(self, arg_tokens: dict[str, list[str]]) -> Choices:
        return Choices.from_values(self._cmd.cache.weights(_model_typed(arg_tokens)))


def _model_typed(arg_tokens: dict[str, list[str]]) -> str | None:
    return next(iter(arg_tokens.get("model", [])), None)
