"""Running commands without a person: a script file, `-c` commands or piped lines.

No prompt, banner or echo on stdout; ``#`` comments and blank lines are skipped; an
error line names where it happened (``job.mer:3: error: ...``, ``<stdin>:3:``,
``-c 2:`` when there are several ``-c``).
"""

from __future__ import annotations

from collections.abc import Iterable

from mer.errors import EXIT_INTERRUPTED
from mer.shell.app import MerShell

__all__ = ["Line", "numbered", "run_script"]

Line = tuple[str, str]  # (where, command)


def numbered(name: str, lines: Iterable[str], sep: str = ":") -> Iterable[Line]:
    """Each command with where it is: ``name:LINE: `` (lines counted from 1)."""
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if text and not text.startswith("#"):
            yield f"{name}{sep}{number}: ", text


def run_script(shell: MerShell, lines: Iterable[Line], stop_on_error: bool) -> None:
    """Run each command in turn; ``shell.failed`` says whether any failed. Ctrl-C (or
    SIGTERM, SIGHUP) stops the whole script, not just the command under way."""
    for where, line in lines:
        before = shell.failed
        shell.failed = False
        shell.where = where
        # NOTE: not kept in the shell's history: a scheduler's script of a million lines
        # would hold a million statements.
        stop = shell.onecmd_plus_hooks(line, add_to_history=False, raise_keyboard_interrupt=True)
        # A reader on the other end of a pipe sees each command's output as it ends.
        try:
            shell.stdout.flush()
        except BrokenPipeError:
            shell.output_closed()
        failed_now = shell.failed
        shell.failed = before or failed_now
        interrupted = shell.exit_code == EXIT_INTERRUPTED  # a Ctrl-C cancelled it
        if stop or interrupted or (failed_now and stop_on_error):
            break
