"""`pipeline list|show|add|remove|run`: named chains of models, each step's result the
next step's input. `run pipeline:NAME` is `pipeline run NAME` (mer/shell/commands/
running.py hands such a run here)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import cmd2

from mer.errors import UsageError
from mer.lazy import lazy_module
from mer.shell import render
from mer.shell.commands.base import MerCommands, command, dispatch, verb
from mer.shell.parsing import add_json, parser

if TYPE_CHECKING:
    from mer import domain
    from mer.domain import RunKind, RunRecord
    from mer.execution.interface import Sinks
    from mer.services import pipeline_runs as pipeline_run_svc
    from mer.services import pipelines as pipeline_svc
    from mer.shell.commands.running import RunCommands
else:
    domain = lazy_module("mer.domain")
    pipeline_run_svc = lazy_module("mer.services.pipeline_runs")
    pipeline_svc = lazy_module("mer.services.pipelines")

__all__ = ["PipelineCommands", "launch_pipeline"]

CATEGORY = "Runs"


class _InOrder(argparse.Action):
    """--step and --map into one list, in the order typed: a map belongs to the step
    before it, which separate lists would forget."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        parts = getattr(namespace, "parts", None) or []
        parts.append((self.dest, values))
        namespace.parts = parts


_noun = parser("Pipelines: list, show, run; add, remove. `pipelines` lists them; `pipeline "
               "NAME` shows one.")
_noun.add_subparsers(title="verbs", metavar="VERB", required=True)

_list = parser("List the pipelines.")
add_json(_list)

_show = parser("Show a pipeline: its steps in order and their maps.")
_show.add_argument("name")
add_json(_show)

_add = parser("Define a pipeline: its steps run in order, each step's result the next "
              "step's input (or, with --map, the parts of it that the map names).")
_add.add_argument("name")
_add.add_argument("--step", action=_InOrder, metavar="MODEL", required=True,
                  completer=MerCommands._models, help="a step: MODEL, MODEL@VERSION or "
                  "MODEL@ALIAS (resolved when it runs); give one per step, in order")
_add.add_argument("--map", action=_InOrder, metavar="result.PATH=input.PATH",
                  help="for the step it follows: put the previous step's result at PATH into "
                  "this step's input at PATH (several allowed; without one the whole result is "
                  "the input)")
_add.add_argument("--description", default="")
add_json(_add)

_remove = parser("Delete a pipeline (its past runs stay in the access log).")
_remove.add_argument("name")
add_json(_remove)

_run = parser("Run a pipeline's steps in order (the same as `run pipeline:NAME`); each step is "
              "a run of its own, listed by `runs show` of the pipeline's run.")
_run.add_argument("name")
_src = _run.add_mutually_exclusive_group()
_src.add_argument("--input", type=Path, completer=cmd2.Cmd.path_complete,
                  help="a file whose content (JSON when it parses) is the first step's input; "
                  "- reads standard input")
_src.add_argument("--data", help="the first step's input: JSON when it parses, else the text")
_run.add_argument("--timeout", type=float, help="seconds before a step is killed (each step)")
add_json(_run)


def launch_pipeline(cmds: MerCommands, args: argparse.Namespace, kind: RunKind, input: Any,
                    sinks: Sinks) -> RunRecord:
    """`run pipeline:NAME ...`: run the pipeline with the run command's input, timeout and
    live output; a line on stderr as each step ends."""
    if kind is not domain.RunKind.RUN:
        raise UsageError(f"{args.model} is a pipeline; `train` runs one model's training command")
    for flag, given in (("--param", args.param), ("--server", args.server),
                        ("--input-file", args.input_file)):
        if given:
            raise UsageError(f"{flag} is for a run of one model; {args.model}'s steps run as "
                             "the pipeline defines them")

    def step_done(number: int, total: int, record: RunRecord) -> None:
        sinks.stderr(f"step {number}/{total}: {render.run_summary(record)}\n".encode())

    record: RunRecord
    record, _ = cmds.call(pipeline_run_svc.run_pipeline(
        cmds.ctx(), args.model.removeprefix(domain.PIPELINE_PREFIX), input=input,
        timeout=args.timeout, sinks=sinks, on_step=step_done))
    return record


class PipelineCommands(MerCommands):

    @command(_noun, CATEGORY)
    def do_pipeline(self, args: argparse.Namespace) -> None:
        """Pipelines: list, show, run; add, remove (edits need --allow-edit)."""
        dispatch(self, args)

    @verb("pipeline", "list", _list)
    def pipeline_list(self, args: argparse.Namespace) -> None:
        found = self.call(pipeline_svc.list_pipelines(self.ctx()))
        self.emit(args, [pipeline_svc.pipeline_image(p) for p in found],
                  lambda: render.Table(render.PIPELINE_HEADERS, render.pipeline_rows(found)))

    @verb("pipeline", "show", _show)
    def pipeline_show(self, args: argparse.Namespace) -> None:
        found = self.call(pipeline_svc.get_pipeline(self.ctx(), args.name))
        self.emit(args, pipeline_svc.pipeline_image(found), lambda: render.pipeline_text(found))

    @verb("pipeline", "add", _add, edits=True)
    def pipeline_add(self, args: argparse.Namespace) -> None:
        steps = pipeline_svc.build_steps(args.parts)
        stored = self.call(pipeline_svc.add_pipeline(self.ctx(), args.name, steps,
                                                     args.description))
        self.emit(args, pipeline_svc.pipeline_image(stored),
                  f"added pipeline {stored.name}: {' -> '.join(s.model for s in stored.steps)}")

    @verb("pipeline", "remove", _remove, edits=True, aliases=("rm",))
    def pipeline_remove(self, args: argparse.Namespace) -> None:
        gone = self.call(pipeline_svc.remove_pipeline(self.ctx(), args.name))
        self.emit(args, {"removed": gone.name}, f"removed pipeline {gone.name}")

    @verb("pipeline", "run", _run)
    def pipeline_run(self, args: argparse.Namespace) -> None:
        from mer.shell.commands.running import RunCommands

        # NOTE: `run pipeline:NAME` itself, so both spellings stream, report and fail alike.
        runner = cast("RunCommands", self._cmd.find_commandsets(RunCommands)[0])
        args.model = domain.PIPELINE_PREFIX + args.name
        args.param = args.server = args.input_file = None
        runner._report(args, runner._launch(args, domain.RunKind.RUN))
