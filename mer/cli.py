"""`mer`: flags -> Settings -> runtime (built in the background) -> MerShell -> exit code.

Interactive when stdin is a terminal; otherwise scripted: commands come from
``--script FILE``, ``-c CMD`` (repeatable) or the piped stdin, with no prompt, banner
or echo on stdout; ``#`` comments and blank lines are skipped; the exit status is 0
only if every command succeeded (1 if one failed, 2 for bad flags, 130 interrupted).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING

from mer import __version__
from mer.cli_args import OneLineParser
from mer.config import load_settings
from mer.errors import EXIT_INTERRUPTED, EXIT_USAGE, MerError
from mer.logfile import setup_logging

if TYPE_CHECKING:
    from mer.bootstrap import Runtime
    from mer.shell.bridge import AsyncBridge, InlineBridge

__all__ = ["main"]


def _parser() -> OneLineParser:
    p = OneLineParser(
        prog="mer",
        description="Model Executor Runtime: run models locally or over SSH, with their "
        "configs, weights and runs kept in a database.",
    )
    p.add_argument("--allow-edit", action="store_true", default=None,
                   help="unlock live edits of models, servers, parameters and weights")
    p.add_argument("--database-url", help="SQLAlchemy URL (default: MER_DATABASE_URL or the "
                   "embedded SQLite database)")
    p.add_argument("--json", action="store_true", default=None, help="print JSON for programs")
    p.add_argument("--script", type=Path, help="run the commands in FILE, then exit")
    p.add_argument("-c", dest="commands", action="append", metavar="CMD",
                   help="run CMD (repeatable; in order), then exit")
    p.add_argument("--stop-on-error", action="store_true",
                   help="in a script, stop at the first failing command")
    p.add_argument("--debug", action="store_true", default=None,
                   help="show tracebacks of internal errors")
    p.add_argument("--pid-file", type=Path, metavar="FILE",
                   help="write mer's process id to FILE while it runs (start_mer.sh does)")
    p.add_argument("--version", action="version", version=f"mer {__version__}")
    return p


def _own_pid_file(path: Path) -> None:
    """Write this process's id to ``path`` and remove the file when mer exits (if it still
    names this process), so stop_mer.sh finds only shells that run. A shell killed by a
    signal leaves it; stop_mer.sh checks that the pid is still a mer before it acts."""
    import atexit

    pid = str(os.getpid())
    path.write_text(pid + "\n", encoding="utf-8")

    def remove() -> None:
        try:
            if path.read_text(encoding="utf-8").strip() == pid:
                path.unlink()
        except OSError:
            pass

    atexit.register(remove)


def _route_signals(bridge: InlineBridge) -> None:
    """Ctrl-C, SIGTERM and SIGHUP cancel the command under way (the bridge waits for its
    cleanup: model killed, access-log row finished), then end mer; between commands
    they end it at once."""
    def interrupt(signum: int, _frame: object) -> None:
        bridge.interrupt(KeyboardInterrupt() if signum == signal.SIGINT
                         else SystemExit(128 + signum))

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        # An ignored signal stays ignored: `nohup mer < job.mer &` must outlive the
        # terminal, and a shell starts background jobs with Ctrl-C ignored.
        if signal.getsignal(signum) != signal.SIG_IGN:
            signal.signal(signum, interrupt)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)  # exits 2 on bad flags
    try:
        settings = load_settings({
            "database_url": args.database_url, "allow_edit": args.allow_edit,
            "json": args.json, "debug": args.debug,
        })
    except MerError as err:
        print(f"mer: error: {err}", file=sys.stderr)
        return err.exit_code
    setup_logging(settings)  # the log file; the terminal gets one line per error
    if args.pid_file is not None:
        try:
            _own_pid_file(args.pid_file)
        except OSError as err:
            print(f"mer: error: cannot write --pid-file {args.pid_file}: {err.strerror or err}",
                  file=sys.stderr)
            return EXIT_USAGE

    from mer.shell.script import Line, numbered

    script_lines: Iterable[Line] | None = None
    if args.script is not None:
        try:
            text = args.script.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            print(f"mer: error: cannot read --script {args.script}: "
                  f"{getattr(err, 'strerror', None) or err}", file=sys.stderr)
            return EXIT_USAGE
        script_lines = list(numbered(str(args.script), text.splitlines()))
    if args.commands:
        # One `-c` needs no place named; several are `-c 1:`, `-c 2:`, ...
        commands = (numbered("-c", args.commands, sep=" ") if script_lines or len(args.commands) > 1
                    else [("", args.commands[0].strip())])
        script_lines = [*(script_lines or []), *commands]
    interactive = script_lines is None and sys.stdin.isatty()
    stdin_is_script = script_lines is None and not interactive
    if stdin_is_script:
        script_lines = numbered("<stdin>", sys.stdin)  # piped: read lazily, line by line

    from mer.shell.bridge import AsyncBridge, InlineBridge

    bridge = AsyncBridge() if interactive else InlineBridge()
    started: list[Future[Runtime]] = []

    def start_runtime() -> Future[Runtime]:
        # Built on the loop: at start-up when interactive (while the user reads the
        # prompt), else when the first command needs it (`mer -c quit` never pays for
        # SQLAlchemy). A start that failed on an unreachable database is tried again by
        # the next command that needs it; any other failure stays.
        if not started or _unreachable(started[-1]):
            from mer.bootstrap import build_runtime

            started.append(bridge.submit(build_runtime(settings)))
        return started[-1]

    from mer.shell.app import MerShell
    from mer.shell.script import run_script

    history = ""
    if interactive:
        data_dir = settings.resolved_data_dir
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            history = str(data_dir / "history")
        except OSError:
            history = ""
    shell = MerShell(start_runtime, bridge, json_output=settings.json,
                     allow_edit=settings.allow_edit, history_file=history,
                     stdin_is_script=stdin_is_script)
    shell.debug = settings.debug
    exit_code = 0
    try:
        if interactive:
            start_runtime().add_done_callback(lambda _: shell.refresh_cache())
            if not settings.json:
                edit = "editing enabled" if settings.allow_edit else "read-only; --allow-edit to edit"
                shell.intro = f"mer {__version__} ({settings.safe_database_url}; {edit}). Type help."
            exit_code = shell.cmdloop()
        else:
            assert isinstance(bridge, InlineBridge)
            _route_signals(bridge)
            try:
                assert script_lines is not None  # not interactive: a script, -c or stdin
                run_script(shell, script_lines, args.stop_on_error)
            except KeyboardInterrupt:
                print("cancelled", file=sys.stderr)
                return EXIT_INTERRUPTED
            except SystemExit as exc:
                return int(exc.code) if isinstance(exc.code, int) else 1
            if shell.exit_code >= 128:  # stopped by a signal (SIGTERM, SIGHUP)
                exit_code = shell.exit_code
            else:  # 2 is kept for mer's own bad flags: a failed command is a failure
                exit_code = 1 if shell.failed else 0
    finally:
        _close(bridge, started)
        if shell.closed_output:
            # What is still buffered for the closed pipe would fail again at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return exit_code


def _unreachable(start: Future[Runtime]) -> bool:
    if not start.done() or start.exception() is None:
        return False  # asked before every command: the usual answer costs no import
    from mer.errors import DatabaseUnreachable

    return isinstance(start.exception(), DatabaseUnreachable)


def _close(bridge: AsyncBridge | InlineBridge, started: list[Future[Runtime]]) -> None:
    """Stop workers, close SSH connections and the database pool, then the loop."""
    cleanup = None
    if started:
        try:
            cleanup = started[-1].result(timeout=30).close()
        except BaseException:  # noqa: BLE001 - it failed to start: nothing to close
            cleanup = None
    bridge.close(cleanup)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
