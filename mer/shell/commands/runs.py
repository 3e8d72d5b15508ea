"""`runs list|show|artifact`: the access log, one row per run, and the files a
container run left."""

from __future__ import annotations

import argparse
from pathlib import Path

import cmd2

from mer.domain import RunStatus
from mer.services import artifacts as artifact_svc
from mer.services import runs as run_svc
from mer.shell import render
from mer.shell.commands.base import MerCommands, command, dispatch, verb
from mer.shell.parsing import add_json, parser, since

__all__ = ["RunLogCommands"]

_noun = parser("The access log: list, show, artifact. `runs` lists the newest; `runs ID` "
               "shows one.")
_noun.add_subparsers(title="verbs", metavar="VERB", required=True)

_list = parser("List runs, newest first.")
_list.add_argument("--model", completer=MerCommands._models, help="only this model's runs")
_list.add_argument("--status", choices=[s.value for s in RunStatus])
_list.add_argument("--since", help="only runs since: 30m, 2h, 1d or an ISO time")
_list.add_argument("--limit", type=int, default=20, help="at most N runs (default 20)")
_list.add_argument("--batch", metavar="ID", help="only the runs of this batch (`run --batch`, "
                   "`--sweep`; a unique prefix is enough)")
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


class RunLogCommands(MerCommands):

    @command(_noun, "Runs")
    def do_runs(self, args: argparse.Namespace) -> None:
        """The access log: list, show, artifact."""
        dispatch(self, args)

    @verb("runs", "list", _list)
    def runs_list(self, args: argparse.Namespace) -> None:
        after = since(args.since) if args.since else None
        batch = None
        if args.batch:
            from mer.services.batch import find_batch  # not at start-up: cold start

            batch = self.call(find_batch(self.ctx(), args.batch))
        records = self.call(run_svc.list_runs(self.ctx(), args.model, args.status, after, args.limit,
                                              batch_id=batch))
        self.emit(args, [render.run_image(r) for r in records],
                  lambda: render.Table(render.RUN_HEADERS, render.run_rows(records)))

    @verb("runs", "show", _show)
    def runs_show(self, args: argparse.Namespace) -> None:
        record = self.call(run_svc.get_run(self.ctx(), args.run_id))
        self.emit(args, render.run_image(record, full=True), lambda: render.run_text(record))

    @verb("runs", "artifact", _artifact)
    def runs_artifact(self, args: argparse.Namespace) -> None:
        found, dest = self.call(artifact_svc.save_artifact(self.ctx(), args.run_id, args.name,
                                                           args.to))
        self.emit(args, {**found.image(), "path": str(dest)},
                  f"{found.name}: {found.size} bytes to {dest} (sha256 {found.sha256[:12]} checked)")
