"""`model list|show|add|set|remove|enable|disable` and `param show|set|unset`."""

from __future__ import annotations

import argparse
import shlex
from typing import TYPE_CHECKING

import cmd2

from mer.errors import UsageError
from mer.lazy import lazy_module
from mer.shell import render
from mer.shell.commands.audit import AUDIT_HEADERS, audit_image, audit_rows
from mer.shell.commands.base import MerCommands, command, dispatch, verb
from mer.shell.confirm import confirm
from mer.shell.parsing import Later, ParserRecipe, add_json, parser

if TYPE_CHECKING:
    from mer import domain
    from mer.domain import ModelParameters
    from mer.services import aliases as alias_svc
    from mer.services import audit as audit_svc
    from mer.services import models as model_svc
    from mer.services import versions as version_svc
else:
    domain = lazy_module("mer.domain")
    alias_svc = lazy_module("mer.services.aliases")
    audit_svc = lazy_module("mer.services.audit")
    model_svc = lazy_module("mer.services.models")
    version_svc = lazy_module("mer.services.versions")

__all__ = ["ModelCommands"]

CATEGORY = "Models"


def _noun(description: str) -> ParserRecipe:
    p = parser(description)
    p.add_subparsers(title="verbs", metavar="VERB", required=True)
    return p


def _model_arg(p: ParserRecipe) -> None:
    p.add_argument("model", completer=MerCommands._models, help="MODEL or MODEL@VERSION")


_list = parser("List the models.")
_list.add_argument("--server", choices_provider=MerCommands._servers, help="only this server's models")
add_json(_list)

_show = parser("Show a model: its fields, parameters and weight vectors; with --history, "
               "every change of its fields and parameters.")
_model_arg(_show)
_show.add_argument("--history", action="store_true", help="list its field and parameter changes")
add_json(_show)

_add = parser("Register a model; with --from, a new version copying another's fields, "
              "parameters and current weight revisions (other flags change the copy).")
_add.add_argument("model", help="NAME or NAME@VERSION (with --from: NAME alone takes the next "
                  "version number)")
_add.add_argument("--from", dest="source", metavar="MODEL@VERSION", completer=MerCommands._models,
                  help="copy this version (or alias): fields, parameters, current weights")
_add.add_argument("--server", choices_provider=MerCommands._servers,
                  help="where it runs (required, except with --from)")
_add.add_argument("--command", help='the argv, split like a POSIX shell: "python3 m.py" '
                  "(required, except for an --image model: its entrypoint then runs)")
_add.add_argument("--mode", choices=["oneshot", "worker"], help="default oneshot")
_add.add_argument("--framing", choices=["jsonl", "mer"], help="default jsonl")
_add.add_argument("--workdir", completer=cmd2.Cmd.path_complete)
_add.add_argument("--timeout", type=float)
_add.add_argument("--train-command", help="the training argv")
_add.add_argument("--description")
_add.add_argument("--image", help="a container model (server of kind container): the image")
_add.add_argument("--cpus", type=float, help="container: CPUs it may use")
_add.add_argument("--memory", help="container: memory it may use, e.g. 512m or 2g")
_add.add_argument("--network", choices=Later(lambda: domain.NETWORKS),
                  help="container: its network (default none)")
add_json(_add)

_set = parser("Set a field of a model: `model set MODEL FIELD VALUE...` (the rest of the "
              "line is the value).")
_model_arg(_set)
_set.add_argument("field", choices_provider=MerCommands._fields)
_set.add_argument("value", nargs="+", help="the new value; several words are one value")
add_json(_set)

_remove = parser("Delete a model with its parameters and weights (asks first in a terminal; "
                 "--yes in scripts).")
_model_arg(_remove)
_remove.add_argument("--yes", action="store_true", help="do not ask")
add_json(_remove)
_enable = parser("Allow runs of a model.")
_model_arg(_enable)
add_json(_enable)
_disable = parser("Refuse runs of a model.")
_model_arg(_disable)
add_json(_disable)

_param_show = parser("Show a model's parameters.")
_model_arg(_param_show)
add_json(_param_show)
_param_set = parser("Set a parameter: `param set MODEL KEY VALUE...` (VALUE is JSON when it "
                    "parses, else the text).")
_model_arg(_param_set)
_param_set.add_argument("key", choices_provider=MerCommands._params)
_param_set.add_argument("value", nargs="+")
add_json(_param_set)
_param_unset = parser("Remove a parameter.")
_model_arg(_param_unset)
_param_unset.add_argument("key", choices_provider=MerCommands._params)
add_json(_param_unset)


def _show_lines(view: model_svc.ModelView) -> str:
    m = view.model
    lines = [
        f"{m.ref}  ({'enabled' if m.enabled else 'disabled'})",
        f"  id:           {m.id}",
        f"  server:       {m.server}",
        f"  mode:         {m.mode} (framing {m.framing})",
        f"  command:      {shlex.join(m.command)}",
        f"  train:        {shlex.join(m.train_command) if m.train_command else '-'}",
        f"  workdir:      {m.workdir or '-'}",
        f"  timeout:      {f'{m.timeout:g} s' if m.timeout else 'none'}",
        f"  env:          {render.dumps(m.env) if m.env else '-'}",
        f"  description:  {m.description or '-'}",
        *([f"  image:        {m.image} (cpus {'-' if m.cpus is None else f'{m.cpus:g}'}, "
           f"memory {m.memory or '-'}, network {m.network or 'none'})"] if m.image else []),
        *([f"  aliases:      {', '.join(f'{m.name}@{a}' for a in view.aliases)}"]
          if view.aliases else []),
        f"  row version:  {m.row_version} (updated {render.when(m.updated_at)})",
        f"  parameters:   {render.dumps(view.parameters) if view.parameters else '-'}",
    ]
    if view.weights:
        rows = [[w.name, w.revision, w.length, w.sha256[:12], w.author, render.when(w.created_at)]
                for w in view.weights]
        table = render.table(["name", "rev", "length", "sha256", "author", "updated"], rows)
        lines.append("  weights:")
        lines += ["    " + line for line in table.splitlines()]
    else:
        lines.append("  weights:      -")
    return "\n".join(lines)


class ModelCommands(MerCommands):

    @command(_noun("Models: list, show, add, set, remove, enable, disable. "
                   "`model NAME` shows one."), CATEGORY)
    def do_model(self, args: argparse.Namespace) -> None:
        """Models: list, show; add, set, remove, enable, disable (edits need --allow-edit)."""
        dispatch(self, args)

    @verb("model", "list", _list)
    def model_list(self, args: argparse.Namespace) -> None:
        models = self.call(model_svc.list_models(self.ctx(), args.server))
        aliases = self.call(alias_svc.aliases_by_ref(self.ctx()))
        rows = [[m.name, m.version, ", ".join(aliases.get(m.ref, ())), m.server, m.mode,
                 "yes" if m.enabled else "no", m.description] for m in models]
        self.emit(args, [{**model_svc.model_image(m), "aliases": aliases.get(m.ref, [])}
                         for m in models], lambda: render.Table(
            ["model", "version", "aliases", "server", "mode", "enabled", "description"], rows))

    @verb("model", "show", _show)
    def model_show(self, args: argparse.Namespace) -> None:
        if args.history:
            self._history(args)
            return
        view = self.call(model_svc.show_model(self.ctx(), args.model))
        m = view.model
        self.seen.models[m.ref] = m.row_version
        self.seen.params[m.id] = view.parameters_version
        self.seen.weights.saw_all(m.id, ((w.name, w.revision) for w in view.weights))
        image = model_svc.model_image(m)
        image["aliases"] = list(view.aliases)
        image["parameters"] = view.parameters
        image["weights"] = [{"name": w.name, "revision": w.revision, "length": w.length,
                             "sha256": w.sha256, "author": w.author, "created_at": w.created_at}
                            for w in view.weights]
        self.emit(args, image, lambda: _show_lines(view))

    def _history(self, args: argparse.Namespace) -> None:
        view = self.call(model_svc.show_model(self.ctx(), args.model))
        entries = self.call(audit_svc.audit_log(self.ctx(), view.model.ref, limit=1000))
        entries = [e for e in entries if e.target == f"model {view.model.ref}"]
        self.emit(args, [audit_image(e) for e in entries],
                  lambda: render.Table(AUDIT_HEADERS, audit_rows(entries)))

    @verb("model", "add", _add, edits=True)
    def model_add(self, args: argparse.Namespace) -> None:
        if args.source is not None:
            self._add_from(args)
            return
        if args.server is None:
            raise UsageError("model add: the following arguments are required: --server "
                             "(see `help model add`)")
        name, version = domain.parse_model_ref(args.model)
        try:
            argv = shlex.split(args.command) if args.command is not None else []
            train = shlex.split(args.train_command) if args.train_command else None
        except ValueError as err:
            raise UsageError(f"--command: {err}") from None
        model = domain.ModelConfig(name=name, version=version or "1", server=args.server,
                            command=argv, train_command=train, mode=args.mode or "oneshot",
                            framing=args.framing or "jsonl", workdir=args.workdir,
                            timeout=args.timeout, description=args.description or "",
                            image=args.image, cpus=args.cpus,
                            memory=args.memory, network=args.network)
        stored = self.call(model_svc.add_model(self.ctx(), model))
        self.seen.models[stored.ref] = stored.row_version
        self.emit(args, model_svc.model_image(stored), f"added {stored.ref}")

    def _add_from(self, args: argparse.Namespace) -> None:
        """`model add m@3 --from m@2 [--timeout 60 ...]`: a copy, with the flags given."""
        changes = {f: getattr(args, f) for f in ("server", "mode", "framing", "workdir",
                                                 "timeout", "description", "image", "cpus",
                                                 "memory", "network")
                   if getattr(args, f) is not None}
        try:
            if args.command is not None:
                changes["command"] = shlex.split(args.command)
            if args.train_command is not None:
                changes["train_command"] = shlex.split(args.train_command) or None
        except ValueError as err:
            raise UsageError(f"--command: {err}") from None
        copied = self.call(version_svc.add_model_from(self.ctx(), args.model, args.source, changes))
        stored = copied.model
        self.seen.models[stored.ref] = stored.row_version
        weights = ", ".join(w.name for w in copied.weights) or "-"
        params = ", ".join(copied.parameters) or "-"
        self.emit(args, {**model_svc.model_image(stored), "from": copied.source.ref,
                         "parameters": copied.parameters,
                         "weights": [render.weight_image(w, values=False) for w in copied.weights]},
                  f"added {stored.ref} from {copied.source.ref} (parameters: {params}; "
                  f"weights: {weights})")

    @verb("model", "set", _set, edits=True)
    def model_set(self, args: argparse.Namespace) -> None:
        value = " ".join(args.value)
        stored = self.call(model_svc.set_model_field(self.ctx(), args.model, args.field, value,
                                                     self.seen.models))
        self.seen.models[stored.ref] = stored.row_version
        self.emit(args, model_svc.model_image(stored),
                  f"{stored.ref}: {args.field} set (row version {stored.row_version})")

    @verb("model", "remove", _remove, edits=True, aliases=("rm",))
    def model_remove(self, args: argparse.Namespace) -> None:
        question = f"remove {args.model} with its parameters, weights and their history?"
        if not confirm(self.shell, question, args.yes):
            self.emit(args, {"removed": None}, "nothing removed")
            return
        removed = self.call(model_svc.remove_model(self.ctx(), args.model, self.seen.models))
        self.seen.models.pop(removed.ref, None)
        self.emit(args, {"removed": removed.ref}, f"removed {removed.ref}")

    def _set_enabled(self, args: argparse.Namespace, enabled: bool) -> None:
        stored = self.call(model_svc.set_model_enabled(self.ctx(), args.model, enabled,
                                                       self.seen.models))
        self.seen.models[stored.ref] = stored.row_version
        self.emit(args, model_svc.model_image(stored),
                  f"{'enabled' if enabled else 'disabled'} {stored.ref}")

    @verb("model", "enable", _enable, edits=True)
    def model_enable(self, args: argparse.Namespace) -> None:
        self._set_enabled(args, True)

    @verb("model", "disable", _disable, edits=True)
    def model_disable(self, args: argparse.Namespace) -> None:
        self._set_enabled(args, False)

    # -- parameters --------------------------------------------------------------------

    @command(_noun("A model's parameters: show, set, unset. `param MODEL` shows them."),
             CATEGORY)
    def do_param(self, args: argparse.Namespace) -> None:
        """Parameters: show; set, unset (edits need --allow-edit)."""
        dispatch(self, args)

    def _params_out(self, args: argparse.Namespace, ref: str, params: ModelParameters) -> None:
        self.seen.params[params.model_id] = params.row_version
        self.emit(args, {"model": ref, "parameters": params.values,
                         "row_version": params.row_version},
                  f"{ref} parameters: {render.dumps(params.values)}")

    @verb("param", "show", _param_show)
    def param_show(self, args: argparse.Namespace) -> None:
        view = self.call(model_svc.show_model(self.ctx(), args.model))
        self.seen.params[view.model.id] = view.parameters_version
        self.emit(args, {"model": view.model.ref, "parameters": view.parameters,
                         "row_version": view.parameters_version},
                  render.dumps(view.parameters))

    @verb("param", "set", _param_set, edits=True)
    def param_set(self, args: argparse.Namespace) -> None:
        params = self.call(model_svc.set_param(self.ctx(), args.model, args.key,
                                               " ".join(args.value), self.seen.params))
        self._params_out(args, args.model, params)

    @verb("param", "unset", _param_unset, edits=True)
    def param_unset(self, args: argparse.Namespace) -> None:
        params = self.call(model_svc.unset_param(self.ctx(), args.model, args.key,
                                                 self.seen.params))
        self._params_out(args, args.model, params)
