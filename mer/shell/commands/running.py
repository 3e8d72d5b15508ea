"""`run`, `train`, `feed`, `stop` and `workers`: running models."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cmd2

from mer.domain import RunKind, RunRecord
from mer.errors import EXIT_OUTPUT_CLOSED, UsageError
from mer.execution.interface import Sinks
from mer.services import runs as run_svc
from mer.shell import render
from mer.shell.commands.base import MerCommands, command
from mer.shell.parsing import add_json, parser

__all__ = ["RunCommands"]

CATEGORY = "Runs"


def _run_parser(description: str) -> cmd2.Cmd2ArgumentParser:
    p = parser(description)
    p.add_argument("model", choices_provider=MerCommands._models, help="MODEL or MODEL@VERSION")
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


_run = _run_parser("Run a model; its output streams live, then a one-line summary.")
_train = _run_parser("Run a model's training command.")

_stop = parser("End a model's worker processes.")
_stop.add_argument("model", choices_provider=MerCommands._models)
add_json(_stop)

_feed = parser("Send each line you type to the model and print each answer, until an empty "
               "line or Ctrl-D: a chat with a loaded worker.")
_feed.add_argument("model", choices_provider=MerCommands._models)
_feed.add_argument("--timeout", type=float, help="seconds to wait for each answer")
add_json(_feed)

_workers = parser("List the live worker processes this shell keeps.")
add_json(_workers)


class RunCommands(MerCommands):

    def _sink(self, stream: Any) -> Callable[[bytes], None]:
        """Where a model's output goes, live, as it comes."""
        buffer = getattr(stream, "buffer", None)
        shell = self.shell

        def sink(chunk: bytes) -> None:
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

    def _launch(self, args: argparse.Namespace, kind: RunKind) -> None:
        as_json = self.want_json(args)
        shell = self.shell
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            shell.output_closed()
        sinks = Sinks(stdout=self._sink(sys.stderr if as_json else sys.stdout),
                      stderr=self._sink(sys.stderr))
        record, _ = self.call(run_svc.run_model(
            self.ctx(), args.model, input=self._input(args),
            params=run_svc.parse_param_overrides(args.param), server=args.server,
            timeout=args.timeout, kind=kind, sinks=sinks,
            input_files=run_svc.parse_input_files(args.input_file),
        ))
        if shell.closed_output:
            raise SystemExit(EXIT_OUTPUT_CLOSED)
        if as_json:
            self.out(render.dumps(render.run_image(record)))
        else:
            sys.stderr.write(render.run_summary(record) + "\n")
            sys.stderr.flush()
        if str(record.status) != "succeeded":
            shell.failed, shell.exit_code = True, 1

    @command(_run, CATEGORY)
    def do_run(self, args: argparse.Namespace) -> None:
        """Run a model."""
        self._launch(args, RunKind.RUN)

    @command(_train, CATEGORY)
    def do_train(self, args: argparse.Namespace) -> None:
        """Run a model's training command."""
        self._launch(args, RunKind.TRAIN)

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
                  lambda: render.table(["server", "model", "pid", "started", "requests"],
                                       render.worker_rows(workers)))

    @command(_feed, CATEGORY)
    def do_feed(self, args: argparse.Namespace) -> None:
        """Chat with a model's worker."""
        shell = self.shell
        interactive = shell.stdin.isatty()
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
