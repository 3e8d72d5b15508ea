"""`run`, `train`, `feed`, `stop` and `workers`: running models. `train --save` stores
the weight vectors a training run returns (an edit: --allow-edit, conflict checks, and
--new/--resize or a yes in a terminal, as `weights set`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cmd2

from mer.errors import EXIT_OUTPUT_CLOSED, EditNotAllowed, MerError, UsageError
from mer.lazy import lazy_module
from mer.shell import render
from mer.shell.commands.base import MerCommands, command
from mer.shell.commands.batch import add_batch_options, is_batch, run_batch
from mer.shell.commands.pipelines import launch_pipeline
from mer.shell.commands.weights import change_image, change_text
from mer.shell.confirm import DECLINED, confirmed
from mer.shell.parsing import ParserRecipe, add_json, parser
from mer.shell.spinner import Spinner

if TYPE_CHECKING:
    from mer import domain
    from mer.domain import RunKind, RunRecord
    from mer.services import runs as run_svc
    from mer.services import weights as weight_svc
else:
    domain = lazy_module("mer.domain")
    run_svc = lazy_module("mer.services.runs")
    weight_svc = lazy_module("mer.services.weights")

__all__ = ["RunCommands"]

CATEGORY = "Runs"


def _run_parser(description: str) -> ParserRecipe:
    p = parser(description)
    p.add_argument("model", completer=MerCommands._models, help="MODEL or MODEL@VERSION")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--input", type=Path, completer=cmd2.Cmd.path_complete,
                     help="a file whose content (JSON when it parses) is the input; - reads "
                     "standard input")
    src.add_argument("--data", help="the input: JSON when it parses, else the text")
    p.add_argument("--param", action="append", metavar="K=V",
                   help="override a parameter for this run (V parsed as JSON when it is)")
    p.add_argument("--input-file", action="append", metavar="NAME=PATH",
                   help="container models: put the file PATH into /data/input as NAME")
    p.add_argument("--server", choices_provider=MerCommands._servers, help="run on this server")
    p.add_argument("--timeout", type=float, help="seconds before the run is killed")
    add_json(p)
    return p


_run = _run_parser("Run a model; its output streams live, then a one-line summary. --batch "
                   "and --sweep run it once per input line or parameter combination.")
_run.add_argument("--detach", action="store_true",
                  help="servers of kind slurm: submit the run with sbatch and return at once "
                  "(`runs wait ID` waits for it)")
add_batch_options(_run)
_train = _run_parser("Run a model's training command. A result with weight vectors "
                     '({"weights": {"w": [...]}}) is stored with --save.')
_train.add_argument("--save", action="store_true",
                    help="store the weight vectors of the result as new revisions (needs "
                    "--allow-edit)")
_train.add_argument("--new", action="store_true",
                    help="with --save: a vector the model does not have yet may be created")
_train.add_argument("--resize", action="store_true",
                    help="with --save: a vector may change its length")

_stop = parser("End a model's worker processes.")
_stop.add_argument("model", completer=MerCommands._models)
add_json(_stop)

_feed = parser("Send each line you type to the model and print each answer, until an empty "
               "line or Ctrl-D: a chat with a loaded worker.")
_feed.add_argument("model", completer=MerCommands._models)
_feed.add_argument("--timeout", type=float, help="seconds to wait for each answer")
add_json(_feed)

_workers = parser("List the live worker processes this shell keeps.")
add_json(_workers)


def _unsaved(record: RunRecord) -> str:
    """The summary's hint that a training result holds weights that were not stored."""
    names = weight_svc.result_weights(record.result)
    if not names:
        return ""
    one = len(names) == 1
    return (f"; {len(names)} weight vector{'' if one else 's'} in the result; rerun with --save "
            f"to store {'it' if one else 'them'}")


class RunCommands(MerCommands):

    def _sink(self, stream: Any, spinner: Spinner | None = None) -> Callable[[bytes], None]:
        """Where a model's output goes, live, as it comes (the spinner gone first)."""
        buffer = getattr(stream, "buffer", None)
        shell = self.shell

        def sink(chunk: bytes) -> None:
            if spinner is not None:
                spinner.stop()
            if shell.closed_output:
                return
            try:
                if buffer is not None:
                    buffer.write(chunk)
                    buffer.flush()
                else:
                    stream.write(chunk.decode("utf-8", "replace"))
                    stream.flush()
            except BrokenPipeError:
                shell.output_closed()
        return sink

    def _input(self, args: argparse.Namespace) -> Any:
        if args.input is not None and str(args.input) == "-":
            if self.shell.stdin_is_script:
                raise UsageError("--input - reads standard input, but it holds the commands "
                                 "being run; use --input FILE or --script FILE")
            return run_svc.load_input(data=sys.stdin.read())
        return run_svc.load_input(args.input, args.data)

    def _launch(self, args: argparse.Namespace, kind: RunKind) -> RunRecord:
        """Run with the output streamed live; a run that did not succeed fails the command."""
        as_json = self.want_json(args)
        shell = self.shell
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            shell.output_closed()
        # A person at a terminal sees a spinner until the model prints (never in a
        # script, nor under --json, whose reader wants only the JSON).
        spinner = Spinner(sys.stderr) if not as_json and shell.watched(sys.stderr) else None
        from mer.execution.interface import Sinks  # loaded by the first run

        sinks = Sinks(stdout=self._sink(sys.stderr if as_json else sys.stdout, spinner),
                      stderr=self._sink(sys.stderr, spinner))
        record: RunRecord
        with spinner or nullcontext():
            if args.model.startswith(domain.PIPELINE_PREFIX):  # `run pipeline:NAME`: its steps
                record = launch_pipeline(self, args, kind, self._input(args), sinks)
            else:
                record, _ = self.call(run_svc.run_model(
                    self.ctx(), args.model, input=self._input(args),
                    params=run_svc.parse_param_overrides(args.param), server=args.server,
                    timeout=args.timeout, kind=kind, sinks=sinks,
                    input_files=run_svc.parse_input_files(args.input_file),
                ))
        if shell.closed_output:
            raise SystemExit(EXIT_OUTPUT_CLOSED)
        if str(record.status) != "succeeded":
            shell.failed, shell.exit_code = True, 1
        return record

    def _report(self, args: argparse.Namespace, record: RunRecord, extra: dict[str, Any] | None = None,
                tail: str = "") -> None:
        """The run's JSON object (with ``extra``) on stdout, or its summary line (with
        ``tail``) on stderr."""
        if self.want_json(args):
            self.out(render.dumps({**render.run_image(record), **(extra or {})}))
        else:
            sys.stderr.write(render.run_summary(record) + tail + "\n")
            sys.stderr.flush()

    @command(_run, CATEGORY)
    def do_run(self, args: argparse.Namespace) -> None:
        """Run a model."""
        if args.detach:
            if is_batch(args):
                raise UsageError("--detach submits one run; it cannot be given with --batch or "
                                 "--sweep")
            self._detach(args)
            return
        if is_batch(args):
            run_batch(self, args)
            return
        self._report(args, self._launch(args, domain.RunKind.RUN))

    def _detach(self, args: argparse.Namespace) -> None:
        """Submit the run (sbatch) and say which run and job it is."""
        if args.input_file:
            raise UsageError("--input-file is for container models; --detach cannot run them")
        from mer.services import detached

        record = self.call(detached.submit_run(
            self.ctx(), args.model, input=self._input(args),
            params=run_svc.parse_param_overrides(args.param), server=args.server,
            timeout=args.timeout))
        short = str(record.id)[:8]
        self.emit(args, render.run_image(record),
                  f"{record.model}@{record.version} queued on {record.server} as Slurm job "
                  f"{record.job_id}; run {short} (`runs wait {short}` waits for it)")

    @command(_train, CATEGORY)
    def do_train(self, args: argparse.Namespace) -> None:
        """Run a model's training command; --save stores the weights it returns."""
        if (args.new or args.resize) and not args.save:
            raise UsageError("--new and --resize go with --save")
        if args.save and not self.shell.allow_edit:
            raise EditNotAllowed()  # before the training runs, not after
        record = self._launch(args, domain.RunKind.TRAIN)
        if str(record.status) != "succeeded":
            self._report(args, record)  # a failed training stores nothing
        elif not args.save:
            self._report(args, record, tail=_unsaved(record))
        elif self.want_json(args):  # one object says it all
            self._report(args, record, self._save(record, args)[0])
        else:  # a person reads the summary first, then what was stored (or a question)
            self._report(args, record)
            text = self._save(record, args)[1]
            if text:
                self.out(text)

    def _save(self, record: RunRecord, args: argparse.Namespace) -> tuple[dict[str, Any], str]:
        """Store the weights a training run returned; a failure fails the command but
        leaves the run's report whole."""
        given = {flag for flag, on in (("--new", args.new), ("--resize", args.resize)) if on}
        try:
            changes = confirmed(self.shell, lambda flags: self.call(weight_svc.save_trained_weights(
                self.ctx(), record, new="--new" in flags, resize="--resize" in flags)), given)
        except MerError as err:
            self.shell.fail(f"error: {err}", err.exit_code)
            return {"saved": [], "save_error": str(err)}, ""
        if changes is None:
            image, text = DECLINED
            return {"saved": [], **image}, text
        for change in changes:
            w = change.current
            self.seen.weights.saw(w.model_id, w.name, w.revision)
        return ({"saved": [change_image(c) for c in changes]},
                "\n".join(change_text(c) for c in changes))

    @command(_stop, CATEGORY)
    def do_stop(self, args: argparse.Namespace) -> None:
        """End a model's workers."""
        count = self.call(run_svc.stop_model(self.ctx(), args.model))
        self.emit(args, {"model": args.model, "stopped": count},
                  f"stopped {count} worker(s) of {args.model}")

    @command(_workers, CATEGORY)
    def do_workers(self, args: argparse.Namespace) -> None:
        """List live workers."""
        workers = run_svc.list_workers(self.ctx())
        self.emit(args, [{"server": w.server, "model": w.model, "version": w.version,
                          "pid": w.pid, "started_at": w.started_at, "requests": w.requests}
                         for w in workers],
                  lambda: render.Table(["server", "model", "pid", "started", "requests"],
                                       render.worker_rows(workers)))

    @command(_feed, CATEGORY)
    def do_feed(self, args: argparse.Namespace) -> None:
        """Chat with a model's worker."""
        shell = self.shell
        interactive = shell.stdin.isatty()
        watched = not self.want_json(args) and shell.watched(sys.stderr)  # a spinner per answer
        while True:
            try:
                line = shell.read_input(f"{args.model}> ") if interactive else shell.stdin.readline()
            except EOFError:
                break
            if not interactive and line == "":
                break
            line = line.rstrip("\r\n")
            if not line.strip():
                break
            record: RunRecord
            with Spinner(sys.stderr) if watched else nullcontext():
                record, _ = self.call(run_svc.run_model(self.ctx(), args.model,
                                                        input=run_svc.load_input(data=line),
                                                        timeout=args.timeout))
            if str(record.status) != "succeeded":
                shell.fail(render.run_summary(record), 1)  # as `run` ends a failed run
            elif self.want_json(args):
                self.out(render.dumps(render.run_image(record)))
            else:
                answer = record.result
                self.out(answer if isinstance(answer, str) else render.dumps(answer))
