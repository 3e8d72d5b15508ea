"""`runs list|show|artifact|wait|export|replay`: the access log, one row per run, the files
a container run left, and a run exported to a zip or replayed exactly."""

from __future__ import annotations

import argparse
import shlex
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import UUID

import cmd2

from mer.lazy import lazy_module
from mer.shell import render
from mer.shell.commands.base import MerCommands, command, dispatch, verb
from mer.shell.parsing import Later, add_json, parser, since
from mer.shell.spinner import Spinner

if TYPE_CHECKING:
    from mer import domain
    from mer.services import artifacts as artifact_svc
    from mer.services import pipeline_runs as pipeline_run_svc
    from mer.services import run_export as export_svc
    from mer.services import run_pages as run_page_svc
    from mer.services import run_replay as replay_svc
    from mer.services import runs as run_svc
else:
    domain = lazy_module("mer.domain")
    artifact_svc = lazy_module("mer.services.artifacts")
    pipeline_run_svc = lazy_module("mer.services.pipeline_runs")
    export_svc = lazy_module("mer.services.run_export")
    run_page_svc = lazy_module("mer.services.run_pages")
    replay_svc = lazy_module("mer.services.run_replay")
    run_svc = lazy_module("mer.services.runs")

__all__ = ["RunLogCommands"]

_noun = parser("The access log: list, show, artifact, wait, export, replay, prune. `runs` lists "
               "the newest; `runs ID` shows one.")
_noun.add_subparsers(title="verbs", metavar="VERB", required=True)

_list = parser("List runs, newest first.")
_list.add_argument("--model", completer=MerCommands._models, help="only this model's runs")
_list.add_argument("--status", choices=Later(lambda: [s.value for s in domain.RunStatus]))
_list.add_argument("--since", help="only runs since: 30m, 2h, 1d or an ISO time")
_list.add_argument("--limit", type=int, default=20, help="at most N runs (default 20)")
_list.add_argument("--batch", metavar="ID", help="only the runs of this batch (`run --batch`, "
                   "`--sweep`; a unique prefix is enough)")
_list.add_argument("--before", metavar="ID",
                   help="only runs older than run ID: the next page (the full id is fastest)")
_list.add_argument("--page", type=int, default=1, metavar="N",
                   help="the N-th page of --limit runs (an offset; --before pages faster)")
add_json(_list)

_show = parser("Show one run whole, with its output.")
_show.add_argument("run_id", help="run id (a unique prefix is enough)")
add_json(_show)

_artifact = parser("Copy a file a container run left in /data/output (see `runs show ID`) out "
                   "of mer's store; its sha256 is checked on the way.")
_artifact.add_argument("run_id", help="run id (a unique prefix is enough)")
_artifact.add_argument("name", help="the artifact's name, as `runs show` lists it")
_artifact.add_argument("--to", type=Path, default=Path("."), completer=cmd2.Cmd.path_complete,
                       help="a file to write, or a directory to put it in (default: here)")
add_json(_artifact)

_wait = parser("Wait until a run has ended (a detached Slurm run: brought up to date as it "
               "goes), then show how; fails unless it succeeded. Ctrl-C stops the waiting, "
               "not the run.")
_wait.add_argument("run_id", help="run id (a unique prefix is enough)")
_wait.add_argument("--timeout", type=float, help="give up after this many seconds")
add_json(_wait)

_export = parser("Write a run to a zip that holds all it takes to rerun it. metadata.json (the "
                 "run, its configuration, parameters and weight revisions with their sha256), "
                 "request.json, result.json, stdout.txt, stderr.txt and weights/NAME.npy at the "
                 "revisions the run used.")
_export.add_argument("run_id", help="run id (a unique prefix is enough)")
_export.add_argument("--to", type=Path, required=True, metavar="FILE", completer=cmd2.Cmd.path_complete,
                     help="the zip to write, or a directory to put run-ID.zip in")
add_json(_export)

_replay = parser("Rerun a run exactly as recorded and say whether it came out identical. The "
                 "recorded configuration, parameters, weight revisions and request are used, not "
                 "today's; a replay that differs fails the command.")
_replay.add_argument("run_id", nargs="?", help="run id (a unique prefix is enough)")
_replay.add_argument("--from", dest="source", type=Path, metavar="FILE", completer=cmd2.Cmd.path_complete,
                     help="replay an export (`runs export`) instead; needs --allow-edit")
_replay.add_argument("--server", choices_provider=MerCommands._servers,
                     help="run on this server instead of the recorded one")
add_json(_replay)


def _next_page(args: argparse.Namespace, last: UUID) -> str:
    """The command that lists the next page: the same filters, after the last run shown."""
    words = ["runs"]
    for flag, value in (("--model", args.model), ("--status", args.status),
                        ("--since", args.since), ("--batch", args.batch),
                        ("--limit", args.limit if args.limit != 20 else None)):
        if value is not None:
            words += [flag, shlex.quote(str(value))]
    return "more: " + " ".join([*words, "--before", str(last)])


class RunLogCommands(MerCommands):

    @command(_noun, "Runs")
    def do_runs(self, args: argparse.Namespace) -> None:
        """The access log: list, show, artifact, wait."""
        dispatch(self, args)

    @verb("runs", "list", _list)
    def runs_list(self, args: argparse.Namespace) -> None:
        after = since(args.since) if args.since else None
        batch = None
        if args.batch:
            from mer.services.batch import find_batch  # not at start-up: cold start

            batch = self.call(find_batch(self.ctx(), args.batch))
        page = self.call(run_page_svc.list_run_page(self.ctx(), args.model, args.status, after,
                                                    args.limit, args.before, args.page,
                                                    batch_id=batch))
        records = page.records
        self.emit(args, [render.run_image(r) for r in records],
                  lambda: render.Table(render.RUN_HEADERS, render.run_rows(records)))
        if page.more and not self.want_json(args):
            self.out(_next_page(args, records[-1].id))

    @verb("runs", "show", _show)
    def runs_show(self, args: argparse.Namespace) -> None:
        record = self.call(run_svc.get_run(self.ctx(), args.run_id))
        steps = self.call(pipeline_run_svc.pipeline_steps(self.ctx(), record))  # None: a model's
        image = render.run_image(record, full=True)
        if steps is not None:
            image["steps"] = [render.step_image(s) for s in steps]
        self.emit(args, image, lambda: render.run_text(record, steps))

    @verb("runs", "artifact", _artifact)
    def runs_artifact(self, args: argparse.Namespace) -> None:
        found, dest = self.call(artifact_svc.save_artifact(self.ctx(), args.run_id, args.name,
                                                           args.to))
        self.emit(args, {**found.image(), "path": str(dest)},
                  f"{found.name}: {found.size} bytes to {dest} (sha256 {found.sha256[:12]} checked)")

    @verb("runs", "wait", _wait)
    def runs_wait(self, args: argparse.Namespace) -> None:
        from mer.services import detached

        record = self.call(detached.wait_run(self.ctx(), args.run_id, args.timeout))
        self.emit(args, render.run_image(record), render.run_summary(record))
        if record.status is not domain.RunStatus.SUCCEEDED:
            self.shell.failed, self.shell.exit_code = True, 1

    @verb("runs", "export", _export)
    def runs_export(self, args: argparse.Namespace) -> None:
        record, path, files = self.call(export_svc.export_run(self.ctx(), args.run_id, args.to))
        self.emit(args, {"run": str(record.id), "path": str(path), "files": files},
                  f"run {str(record.id)[:8]} exported to {path}: {', '.join(files)}")

    @verb("runs", "replay", _replay)
    def runs_replay(self, args: argparse.Namespace) -> None:
        watched = not self.want_json(args) and self.shell.watched(sys.stderr)
        with Spinner(sys.stderr) if watched else nullcontext():
            replay = self.call(replay_svc.replay_run(self.ctx(), args.run_id, source=args.source,
                                                     server=args.server))
        self.emit(args, render.replay_image(replay), lambda: render.replay_text(replay))
        if not replay.identical:
            self.shell.failed, self.shell.exit_code = True, 1
