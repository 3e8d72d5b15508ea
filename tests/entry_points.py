"""mer's entry points (`mer`, `mer-migrate`) called in this process, as their console
scripts call them (``sys.exit(main())``), for what needs no process of its own: flags,
output, exit codes. A signal, a pipe or a pty needs the real process."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def call_main(main: Callable[[list[str]], int], args: tuple[str, ...] | list[str],
              env: dict[str, str], stdin: str | None = None,
              cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``main(args)`` with the MER_* variables of ``env`` (and no others), a piped stdin
    (``stdin``, else empty, as /dev/null), in ``cwd``, its output captured. What it
    changes in the process (signal handlers, logging, MER_* variables, the working
    directory) is put back."""
    from mer.logfile import close_logging

    mine = {k: v for k, v in env.items() if k.startswith("MER_")}
    saved_env = {k: v for k, v in os.environ.items()
                 if k.startswith("MER_") and k != "MER_OWNER"}  # see mer's this_owner()
    saved_signals = {s: signal.getsignal(s) for s in SIGNALS}
    saved_stdin, saved_cwd = sys.stdin, os.getcwd()
    root = logging.getLogger()
    saved_logging = (list(root.handlers), root.level)  # mer-migrate calls basicConfig
    out, err = io.StringIO(), io.StringIO()
    for key in saved_env:
        del os.environ[key]
    os.environ.update(mine)
    sys.stdin = io.StringIO(stdin or "")
    if cwd is not None:
        os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # bad flags: argparse exits 2
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        os.chdir(saved_cwd)
        sys.stdin = saved_stdin
        for key in mine:
            os.environ.pop(key, None)
        os.environ.update(saved_env)
        for signum, handler in saved_signals.items():
            signal.signal(signum, handler)
        close_logging()
        root.handlers[:], root.level = saved_logging
        asyncio.set_event_loop(None)
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())
