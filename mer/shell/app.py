"""The mer shell: a cmd2 application, thin. It reads a line, rewrites a shorthand into
the one grammar (mer/shell/grammar.py), hands it to a command set (mer/shell/commands/),
whose commands call the services on the bridge's event loop, and prints.

Errors are reported in one place, each as ONE line on stderr: a MerError prints ``error:
<message>`` and sets the exit status; Ctrl-C prints ``cancelled`` (status 130); anything
else is ``internal error: Type: message (details in LOG)``, its traceback in mer's log
file (on screen too with --debug). A command's bad arguments are one line too
(``MerArgumentParser``). In a script each line starts with where it happened
(``job.mer:3: error: ...``).
"""

from __future__ import annotations

import concurrent.futures
import logging
import shutil
import sys
import threading
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import cmd2
from cmd2 import rich_utils as ru
from cmd2.exceptions import Cmd2ArgparseError

from mer.errors import EXIT_OUTPUT_CLOSED, MerError
from mer.logfile import internal_error_line
from mer.shell import grammar, render
from mer.shell.bridge import AsyncBridge, InlineBridge
from mer.shell.commands import COMMAND_SETS
from mer.shell.completion import CompletionCache, build_cache
from mer.shell.lazy_parsers import LazyVerbParsers
from mer.shell.parsing import BadArguments, LiteralStatementParser, MerArgumentParser
from mer.shell.seen import SeenViews

if TYPE_CHECKING:
    from mer.bootstrap import Runtime
    from mer.services.context import ServiceContext

__all__ = ["MerShell"]

log = logging.getLogger("mer.shell")

# cmd2's own commands (help, alias, macro, history, ...) build their parsers from this.
cmd2.set_default_argument_parser(MerArgumentParser)

# cmd2 built-ins a mer user does not need day to day: they still work, unlisted.
HIDDEN_BUILTINS = ("alias", "macro", "shortcuts", "run_script", "_relative_run_script")
# Commands after which the names Tab completes may have changed.
EDITING_COMMANDS = ("model", "param", "server", "weights")


class MerShell(cmd2.Cmd):
    def __init__(self, start_runtime: Callable[[], concurrent.futures.Future[Runtime]],
                 bridge: AsyncBridge | InlineBridge, *,
                 json_output: bool = False, allow_edit: bool = False, stdin: Any = None,
                 stdout: Any = None, history_file: str = "", stdin_is_script: bool = False) -> None:
        super().__init__(
            stdin=stdin, stdout=stdout, allow_cli_args=False, include_py=False,
            allow_redirection=False, shortcuts={}, terminators=[],
            persistent_history_file=history_file, auto_load_commands=False,
        )
        self.statement_parser = LiteralStatementParser(terminators=[], shortcuts={})
        self.prompt = "mer> "
        self._start_runtime = start_runtime
        self._runtime_future: concurrent.futures.Future[Runtime] | None = None
        self._started: ServiceContext | None = None  # the context of the runtime once started
        self.bridge = bridge
        self.json_output = json_output
        self.allow_edit = allow_edit
        self.stdin_is_script = stdin_is_script  # `--input -` cannot read the commands
        self.failed = False  # any command failed since start (for scripted runs)
        self.closed_output = False  # the reader of stdout went away (see output_closed)
        self.where = ""  # in a script, `FILE:LINE: ` before each error line
        self.cache = CompletionCache()
        self._refreshing: concurrent.futures.Future[Any] | None = None
        self.seen = SeenViews()  # what this shell last showed (stale edits are refused)
        self.aliases.update(grammar.ALIASES)
        self.hidden_commands.extend(HIDDEN_BUILTINS)
        self.remove_settable("editor")  # its `edit` command is removed
        self.command_parsers = LazyVerbParsers(self, self.command_parsers)
        for command_set in COMMAND_SETS:
            self.register_command_set(command_set())
        self.register_postparsing_hook(self._one_grammar)
        self.register_postcmd_hook(self._after_command)

    def _register_subcommands(self, owner: Any) -> None:
        if isinstance(self.command_parsers, LazyVerbParsers) and owner is not self:
            self.command_parsers.defer(owner)  # attached when the noun is first used
        else:
            super()._register_subcommands(owner)

    # -- plumbing ---------------------------------------------------------------------

    @property
    def ctx(self) -> ServiceContext:
        # The runtime is built on the loop (in the background when interactive); the first
        # command that needs it waits for it.
        # NOTE: asked until it answers: a start that failed on an unreachable database
        # is started again (mer/cli.py), so the database coming back is noticed; a
        # runtime that started stays the shell's.
        if self._started is None:
            self._runtime_future = self._start_runtime()
            self._started = self._runtime_future.result().ctx
        return self._started

    def call(self, coro: Any) -> Any:
        try:
            self.ctx  # noqa: B018 - surface a start-up error (bad database) before running
        except BaseException:
            coro.close()  # never awaited: say nothing about it at exit
            raise
        return self.bridge.call(coro)

    def fail(self, message: str, code: int = 1) -> None:
        self.failed = True
        self.exit_code = code
        self.perror(self.where + message, style=None)

    def onecmd(self, statement: Any, *, add_to_history: bool = True) -> bool:
        try:
            return super().onecmd(statement, add_to_history=add_to_history)
        except Cmd2ArgparseError as err:
            cause = err.__cause__
            if isinstance(cause, BadArguments):
                self.fail(f"error: {cause.message}", 2)
            elif not (isinstance(cause, SystemExit) and cause.code in (0, None)):
                self.failed, self.exit_code = True, 2
            raise

    def default(self, statement: Any) -> bool | None:
        known = [*self.get_visible_commands(), *self.aliases]
        from mer.errors import did_you_mean

        self.fail(f"error: unknown command '{statement.command}'"
                  f"{did_you_mean(statement.command, known)}; see `help`", 2)
        return None

    def pexcept(self, exception: BaseException, **kwargs: Any) -> None:
        # cmd2 calls this for what escaped a command's own reporting (a hook, a built-in).
        if isinstance(exception, MerError):
            self.fail(f"error: {exception}", exception.exit_code)
        else:
            self.internal_error(exception, "command")

    def internal_error(self, err: BaseException, where: str) -> None:
        """A bug in mer: one line on stderr, the traceback in the log file (and on screen
        with --debug)."""
        if self.debug:
            traceback.print_exception(err, file=sys.stderr)
        self.fail(internal_error_line(err, where), 1)

    def watched(self, stream: Any) -> bool:
        """A person reads ``stream``: mer is interactive (not a script) and it is a terminal."""
        return self.bridge.background and _isatty(stream)

    def show(self, text: str | render.Table) -> None:
        """Text for people. To a pipe or a file (scripts, tests) plain, as ever; to a
        terminal a table fits its width, coloured, and, interactively, output longer
        than the screen goes through the pager."""
        if not _isatty(self.stdout):
            self.out(text if isinstance(text, str) else text.plain())
            return
        size = shutil.get_terminal_size()
        if isinstance(text, render.Table):
            text = render.fit(text, size.columns, colour=ru.ALLOW_STYLE != ru.AllowStyle.NEVER)
        if self.bridge.background and text.count("\n") >= size.lines:
            self.ppaged(text, end="" if text.endswith("\n") else "\n")
        else:
            self.out(text)

    def out(self, text: str) -> None:
        try:
            self.stdout.write(text if text.endswith("\n") else text + "\n")
        except BrokenPipeError:
            self.output_closed()

    def output_closed(self) -> None:
        """Whoever read mer's output went away (`mer < job.mer | head`). As any program in
        a pipeline, mer stops: the command under way is cancelled (a run is recorded
        cancelled, its model killed) and mer exits 141, as if SIGPIPE had ended it."""
        self.closed_output = True
        if isinstance(self.bridge, InlineBridge):
            self.bridge.interrupt(SystemExit(EXIT_OUTPUT_CLOSED))  # raises between commands
        elif threading.current_thread() is threading.main_thread():
            raise SystemExit(EXIT_OUTPUT_CLOSED)
        # NOTE: else a model's output, on the interactive loop's thread: it is dropped
        # from now on, and the command raises when it ends (the run command checks).

    def complete(self, text: str, line: str, begidx: int, endidx: int,
                 custom_settings: Any = None) -> cmd2.Completions:
        if custom_settings is None:  # the command line, not a prompt inside a command
            full, start = grammar.for_completion(line, begidx)
            line, begidx, endidx = full, start, endidx + start - begidx
        return super().complete(text, line, begidx, endidx, custom_settings)

    def _get_command_category(self, func: Any) -> str:
        category = super()._get_command_category(func)
        return "Shell" if category == cmd2.Cmd.DEFAULT_CATEGORY else category

    def _one_grammar(self, data: cmd2.plugin.PostparsingData) -> cmd2.plugin.PostparsingData:
        command = data.statement.command
        if command != "help" and command not in grammar.NOUNS:
            return data  # `run`, `quit`...: nothing to rewrite, the words left unsplit
        words = grammar.canonical(command, data.statement.argv[1:])
        if words is not None:
            import shlex

            data.statement = self.statement_parser.parse(shlex.join(words))
        return data

    def _after_command(self, data: cmd2.plugin.PostcommandData) -> cmd2.plugin.PostcommandData:
        if data.statement.command in EDITING_COMMANDS:
            self.refresh_cache()
        return data

    def refresh_cache(self) -> None:
        """Rebuild the completion cache on the loop; a rebuild under way is replaced."""
        if not self.bridge.background:
            return  # a script completes nothing: no rebuild to wait for between commands
        future = self._runtime_future = self._start_runtime()
        if not future.done() or future.exception() is not None:
            return
        if self._refreshing is not None and not self._refreshing.done():
            self._refreshing.cancel()

        async def rebuild() -> None:
            try:
                self.cache = await build_cache(self.ctx)
            except MerError:
                log.debug("completion refresh failed", exc_info=True)

        self._refreshing = self.bridge.submit(rebuild())


# Built-ins that run arbitrary code or could get around the edit gate are removed (set to
# None, cmd2's way); cmd2's `set` is `settings` here (`set` is `model set`, as before).
for _builtin in ("shell", "run_pyscript", "edit", "py", "ipy", "set"):
    setattr(MerShell, f"do_{_builtin}", None)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no such method, or closed
        return False
