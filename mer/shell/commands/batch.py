"""`run MODEL --batch FILE | --sweep K=V1,V2 ...`: one model run many times, fanned out
(mer/services/batch.py). A person at a terminal sees a progress bar, a script one
summary line on stderr, --json one object per run as each ends.

The services are imported when a batch runs, not with the shell (cold start)."""

from __future__ import annotations

import argparse
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cmd2

from mer.errors import UsageError
from mer.shell import render

if TYPE_CHECKING:
    from mer.services import batch as batch_svc
    from mer.shell.commands.running import RunCommands

__all__ = ["add_batch_options", "batch_summary", "is_batch", "run_batch"]

_BATCH_ONLY = ("parallel", "servers", "out", "stop_on_error")
_ORDER = ("succeeded", "failed", "timeout", "lost", "cancelled", "skipped")


def add_batch_options(p: Any) -> None:
    """The options of a batch on ``p``: an argparse parser, or anything that takes the
    same calls (a recipe of one)."""
    g = p.add_argument_group("batches and sweeps (one run per input line or combination)")
    g.add_argument("--batch", type=Path, metavar="FILE", completer=cmd2.Cmd.path_complete,
                   help="JSON Lines: each line is one run's input")
    g.add_argument("--sweep", action="append", metavar="K=V1,V2",
                   help="run every combination of these parameter values (repeatable)")
    g.add_argument("--parallel", type=int, metavar="N",
                   help="at most N runs at once (default: as many as the servers' max-runs allow)")
    g.add_argument("--servers", metavar="A,B", help="spread the runs over these servers")
    g.add_argument("--out", type=Path, metavar="FILE", completer=cmd2.Cmd.path_complete,
                   help="write each run's result as JSON Lines, in input order")
    g.add_argument("--stop-on-error", action="store_true",
                   help="start no more runs after one fails")


def is_batch(args: argparse.Namespace) -> bool:
    """Whether ``run`` fans out; a batch-only option without --batch or --sweep is refused."""
    if getattr(args, "batch", None) is not None or getattr(args, "sweep", None):
        return True
    given = [name for name in _BATCH_ONLY if getattr(args, name, None) not in (None, False)]
    if given:
        flag = "--" + given[0].replace("_", "-")
        raise UsageError(f"{flag} goes with --batch FILE or --sweep K=V1,V2")
    return False


def batch_summary(report: batch_svc.BatchReport, out: Path | None) -> str:
    """The one line a script gets: how many runs ended how, and where to look."""
    counts = [f"{report.count(s)} {s}" for s in _ORDER if report.count(s)]
    line = (f"batch {report.batch_id.hex[:8]}: {len(report.outcomes)} runs of {report.model} in "
            f"{report.seconds:.2f} s: {', '.join(counts)}")
    if report.stopped:
        line += " (stopped at the first failure)"
    line += f"; `runs --batch {report.batch_id.hex[:8]}` lists them"
    return line + (f"; results in {out}" if out is not None else "")


class _JsonLines:
    """--json: each run's object on its own line as it ends."""

    def __init__(self, commands: RunCommands) -> None:
        self._commands = commands

    def started(self, item: batch_svc.BatchItem) -> None:
        pass

    def finished(self, outcome: batch_svc.BatchOutcome) -> None:
        self._commands.out(render.dumps(outcome.image()))


def run_batch(commands: RunCommands, args: argparse.Namespace) -> None:
    """Plan the batch whole (a bad line stops it before anything runs), run it, report."""
    from mer.services import batch as batch_svc
    from mer.services import runs as run_svc

    shell = commands.shell
    if args.batch is not None and (args.input is not None or args.data is not None):
        raise UsageError("--batch gives each run its input; drop --input/--data")
    if args.server is not None and args.servers is not None:
        raise UsageError("give --server or --servers, not both")
    inputs = batch_svc.read_inputs(args.batch) if args.batch is not None else None
    items = batch_svc.plan_items(inputs=inputs, sweeps=batch_svc.parse_sweeps(args.sweep),
                                 input=None if inputs is not None else commands._input(args))
    servers = batch_svc.parse_servers(args.servers or args.server)
    out = batch_svc.check_out_path(args.out)
    as_json = commands.want_json(args)
    events: Any = None
    progress: Any = nullcontext()
    if as_json:
        events = _JsonLines(commands)
    elif shell.watched(sys.stderr):
        from mer.shell.progress import BatchProgress

        events = progress = BatchProgress(sys.stderr, len(items), args.model)
    with progress:
        report: batch_svc.BatchReport = commands.call(batch_svc.run_batch(
            commands.ctx(), args.model, items, parallel=args.parallel, servers=servers,
            params=run_svc.parse_param_overrides(args.param), timeout=args.timeout,
            input_files=run_svc.parse_input_files(args.input_file),
            stop_on_error=args.stop_on_error, events=events, out=out))
    if not as_json:
        sys.stderr.write(batch_summary(report, out) + "\n")
        sys.stderr.flush()
    if not report.ok:
        shell.failed, shell.exit_code = True, 1
