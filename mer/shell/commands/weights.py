"""`weights show|history|set|rollback|remove`: a model's weight vectors and their
revisions. A new vector beside others, a new length or a removal is asked yes/no in a
terminal and needs its flag (--new, --resize, --yes) in a script (mer/shell/confirm.py)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cmd2

from mer.errors import NeedsConfirmation, UsageError
from mer.lazy import lazy_module
from mer.shell import render
from mer.shell.commands.base import MerCommands, command, dispatch, verb
from mer.shell.confirm import DECLINED, confirmed
from mer.shell.parsing import ParserRecipe, add_json, parser

if TYPE_CHECKING:
    from mer.domain import WeightRevision
    from mer.services import weights as weight_svc
    from mer.services.weights import WeightChange
else:
    weight_svc = lazy_module("mer.services.weights")

__all__ = ["WeightCommands", "change_image", "change_text"]

_ELEMENT = re.compile(r"([^\[\]=]+)\[(-?\d+)\]=(.+)")


def _model_and_name(p: ParserRecipe, name_required: bool = True) -> None:
    p.add_argument("model", completer=MerCommands._models, help="MODEL or MODEL@VERSION")
    p.add_argument("name", nargs=None if name_required else "?",
                   choices_provider=MerCommands._weights, help="the vector's NAME")


_noun = parser("Weight vectors: show, history; set, rollback, remove. `weights MODEL [NAME]` "
               "shows them.")
_noun.add_subparsers(title="verbs", metavar="VERB", required=True)

_show = parser("Show a model's weight vectors, or one of them.")
_model_and_name(_show, name_required=False)
_show.add_argument("--head", type=int, help="show the first N values (default 8; all under --json)")
add_json(_show)

_history = parser("List every revision of a weight vector.")
_model_and_name(_history)
add_json(_history)

_set = parser("Store a new revision of a vector: `weights set MODEL NAME --values 0.1,0.2` or "
              "`--file F.npy|.npz|.csv|.json`, or one element: `weights set MODEL NAME[I]=V`. "
              "Values equal to the newest revision store nothing.")
_set.add_argument("model", completer=MerCommands._models, help="MODEL or MODEL@VERSION")
_set.add_argument("name", choices_provider=MerCommands._weights, help="NAME or NAME[I]=V")
_set.add_argument("--values", help="comma-separated numbers")
_set.add_argument("--file", type=Path, completer=cmd2.Cmd.path_complete,
                  help="a .npy, .npz, .csv or .json file")
_set.add_argument("--column", metavar="NAME",
                  help="the array of an .npz, the column of a CSV with a header row, the key of "
                  "a JSON object")
_set.add_argument("--new", action="store_true",
                  help="create a vector the model does not have yet (a terminal asks instead)")
_set.add_argument("--resize", action="store_true",
                  help="allow a new length (a terminal asks instead)")
_set.add_argument("--note", default="", help="a note for the revision")
add_json(_set)

_rollback = parser("Make an old revision the newest again (as a new revision).")
_model_and_name(_rollback)
_rollback.add_argument("revision", type=int, help="the revision to bring back")
add_json(_rollback)

_remove = parser("Remove a weight vector with its history; runs no longer receive it.")
_model_and_name(_remove)
_remove.add_argument("--yes", action="store_true", help="do not ask (a script must say it)")
add_json(_remove)


def _vector_text(w: WeightRevision, head: int | None) -> str:
    vals = w.values.tolist()
    shown = ", ".join(f"{v:g}" for v in vals[:head])
    more = f", ... ({w.length - head} more)" if head is not None and w.length > head else ""
    return (f"{w.name}  rev {w.revision}  length {w.length}  sha256 {w.sha256[:12]}  "
            f"by {w.author}\n  [{shown}{more}]")


class WeightCommands(MerCommands):

    @command(_noun, "Models")
    def do_weights(self, args: argparse.Namespace) -> None:
        """Weight vectors: show, history; set, rollback (edits need --allow-edit)."""
        dispatch(self, args)

    @verb("weights", "show", _show)
    def weights_show(self, args: argparse.Namespace) -> None:
        revs = self.call(weight_svc.show_weights(self.ctx(), args.model, args.name))
        if args.name is not None:
            self.seen.weights.saw(revs[0].model_id, revs[0].name, revs[0].revision)
        elif revs:
            self.seen.weights.saw_all(revs[0].model_id, ((w.name, w.revision) for w in revs))
        if self.want_json(args):
            images = [render.weight_image(w, args.head) for w in revs]
            self.out(render.dumps(images[0] if args.name else images))
            return
        head = 8 if args.head is None else args.head
        self.show("\n".join(_vector_text(w, head) for w in revs) or "no weight vectors")

    @verb("weights", "history", _history)
    def weights_history(self, args: argparse.Namespace) -> None:
        revs = self.call(weight_svc.weight_history(self.ctx(), args.model, args.name))
        newest = max(revs, key=lambda w: w.revision)
        self.seen.weights.saw(newest.model_id, newest.name, newest.revision)
        rows = [[w.revision, w.length, w.sha256[:12], w.author, render.when(w.created_at),
                 str(w.run_id)[:8] if w.run_id else None, w.note] for w in revs]
        self.emit(args, [render.weight_image(w, values=False) for w in revs], lambda: render.Table(
            ["rev", "length", "sha256", "author", "created", "run", "note"], rows))

    @verb("weights", "set", _set, edits=True)
    def weights_set(self, args: argparse.Namespace) -> None:
        element = _ELEMENT.fullmatch(args.name)
        if element:
            name, index, text = element.group(1), int(element.group(2)), element.group(3)
            try:
                number = float(text)
            except ValueError:
                raise UsageError(f"'{text}' is not a number") from None
            self._stored(args, self.call(weight_svc.set_weight_element(
                self.ctx(), args.model, name, index, number, args.note, self.seen.weights)))
            return
        if (args.values is None) == (args.file is None):
            raise UsageError("give exactly one of --values V,V,... or --file F")
        if args.column is not None and args.file is None:
            raise UsageError("--column picks from a --file; it has no meaning with --values")
        values = (weight_svc.parse_values(args.values) if args.values is not None
                  else weight_svc.read_weights_file(args.file, args.column))
        given = {flag for flag, on in (("--new", args.new), ("--resize", args.resize)) if on}
        change = confirmed(self.shell, lambda flags: self.call(weight_svc.set_weights(
            self.ctx(), args.model, args.name, values, args.note, self.seen.weights,
            new="--new" in flags, resize="--resize" in flags)), given, self._saw_asked)
        if change is None:
            self.emit(args, *DECLINED)
        else:
            self._stored(args, change)

    @verb("weights", "rollback", _rollback, edits=True)
    def weights_rollback(self, args: argparse.Namespace) -> None:
        self._stored(args, self.call(weight_svc.rollback_weights(
            self.ctx(), args.model, args.name, args.revision, self.seen.weights)))

    @verb("weights", "remove", _remove, edits=True)
    def weights_remove(self, args: argparse.Namespace) -> None:
        gone: WeightRevision | None = confirmed(
            self.shell, lambda flags: self.call(weight_svc.remove_weights(
                self.ctx(), args.model, args.name, self.seen.weights, yes="--yes" in flags)),
            {"--yes"} if args.yes else set(), self._saw_asked)
        if gone is None:
            self.emit(args, *DECLINED)
            return
        self.seen.weights.saw(gone.model_id, gone.name, 0)  # no such vector now
        self.emit(args, {"removed": gone.name, "model": args.model, "revision": gone.revision},
                  f"{gone.name}: removed (it was at revision {gone.revision})")

    def _saw_asked(self, err: NeedsConfirmation) -> None:
        """A yes answers what the question showed: the edit is checked against that."""
        if err.seen:
            self.seen.weights.saw(*err.seen)

    def _stored(self, args: argparse.Namespace, change: WeightChange) -> None:
        w = change.current
        self.seen.weights.saw(w.model_id, w.name, w.revision)
        self.emit(args, change_image(change), change_text(change))


def change_image(change: WeightChange) -> dict[str, Any]:
    """What an edit did to a vector, for programs: the revision, and whether it is new."""
    return {**render.weight_image(change.current, values=False), "unchanged": not change.changed}


def change_text(change: WeightChange) -> str:
    w = change.current
    if not change.changed:
        return f"{w.name}: unchanged (revision {w.revision})"
    return f"{w.name}: revision {w.revision} ({w.length} values, sha256 {w.sha256[:12]})"
