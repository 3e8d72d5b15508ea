"""The shell's own commands: `settings` (cmd2's `set`, renamed) and `refresh`."""

from __future__ import annotations

import argparse

from cmd2.string_utils import strip_style

from mer.errors import UsageError
from mer.shell import render
from mer.shell.commands.base import MerCommands, command
from mer.shell.completion import build_cache
from mer.shell.parsing import add_json, parser

__all__ = ["ShellCommands"]

_settings = parser("Show the shell's settings, or change one: `settings NAME VALUE`.")
_settings.add_argument("name", nargs="?", help="a setting (see `settings`)")
_settings.add_argument("value", nargs="?", help="its new value")
add_json(_settings)

_refresh = parser("Refresh the names that Tab completes.")


class ShellCommands(MerCommands):

    @command(_settings, "Shell")
    def do_settings(self, args: argparse.Namespace) -> None:
        """Show or change the shell's settings."""
        settables = self.shell.settables
        if args.name is not None and args.name not in settables:
            raise UsageError(f"no setting '{args.name}'; see `settings`")
        if args.value is not None:
            try:
                settables[args.name].value = args.value
            except ValueError as err:
                raise UsageError(f"setting {args.name}: {err}") from None
        names = [args.name] if args.name else sorted(settables)
        values = {name: settables[name].value for name in names}
        rows = [[name, values[name], strip_style(settables[name].description)] for name in names]
        self.emit(args, values, lambda: render.Table(["setting", "value", "description"], rows))

    @command(_refresh, "Shell")
    def do_refresh(self, _: argparse.Namespace) -> None:
        """Refresh completion names."""
        self.shell.cache = self.call(build_cache(self.ctx()))
