"""`runs prune --before 30d [--keep-failed] [--dry-run] [--yes]`: delete old runs from
the access log (mer/services/retention.py), an edit: it needs --allow-edit, asks in a
terminal and wants --yes in a script."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from mer.errors import UsageError
from mer.lazy import lazy_module
from mer.shell import confirm, render
from mer.shell.commands.base import MerCommands, verb
from mer.shell.parsing import add_json, parser, since

if TYPE_CHECKING:
    from mer.services import retention
    from mer.services.retention import PruneResult
else:
    retention = lazy_module("mer.services.retention")

__all__ = ["RunPruneCommands"]

_prune = parser("Delete the runs that started before --before from the access log. Runs "
                "still running or queued stay; the rest go oldest first, in batches, so "
                "running shells are not held up.")
_prune.add_argument("--before", required=True, metavar="WHEN",
                    help="runs started before: 30d, 12h ago or an ISO date/time")
_prune.add_argument("--keep-failed", action="store_true",
                    help="keep every run that did not succeed (failed, timeout, cancelled, lost)")
_prune.add_argument("--dry-run", action="store_true", help="only count what would be deleted")
_prune.add_argument("--yes", action="store_true", help="do not ask (scripts must give it)")
add_json(_prune)


def _image(result: PruneResult) -> dict[str, object]:
    return {"would_delete" if result.dry_run else "deleted": result.count,
            "cutoff": result.cutoff, "keep_failed": result.keep_failed}


def _runs(result: PruneResult) -> str:
    return f"{result.count} run{'' if result.count == 1 else 's'}"


def _text(result: PruneResult) -> str:
    done = "would be deleted" if result.dry_run else "deleted"
    kept = "; runs that did not succeed kept" if result.keep_failed else ""
    return f"{_runs(result)} {done} (started before {render.when(result.cutoff)}{kept})"


class RunPruneCommands(MerCommands):

    @verb("runs", "prune", _prune, edits=True)
    def runs_prune(self, args: argparse.Namespace) -> None:
        cutoff = since(args.before, flag="--before")
        ctx = self.ctx()
        if args.dry_run:
            counted = self.call(retention.count_prunable_runs(ctx, cutoff, args.keep_failed))
            self.emit(args, _image(counted), _text(counted))
            return
        if not args.yes:
            if not confirm.person_present(self.shell):
                raise UsageError("runs prune deletes runs: in a script, add --yes to confirm "
                                 "(--dry-run counts them)")
            counted = self.call(retention.count_prunable_runs(ctx, cutoff, args.keep_failed))
            question = f"delete {_runs(counted)} started before {render.when(counted.cutoff)}?"
            if counted.count and not confirm.ask(self.shell, question):
                self.emit(args, *confirm.DECLINED)
                return
        result = self.call(retention.prune_runs(ctx, cutoff, args.keep_failed))
        self.emit(args, _image(result), _text(result))
