"""The mer shell: a cmd2 application. Thin: it parses, completes and renders; every use
case is a service call run on the bridge's event loop.

Errors are reported in one place (``_reports``), each as ONE line on stderr: a MerError
prints ``error: <message>`` and sets the exit status; Ctrl-C prints ``cancelled`` (status
130); anything else is ``internal error: Type: message (details in LOG)``, its traceback
in mer's log file (on screen too with --debug). A command's bad arguments are one line
too (``MerArgumentParser``): ``error: run: <argparse's message> (see `help run`)``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import functools
import logging
import re
import shlex
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn
from uuid import UUID

import cmd2
from cmd2 import Choices, Cmd2ArgumentParser, with_argparser
from cmd2.exceptions import Cmd2ArgparseError

from mer.bootstrap import Runtime
from mer.domain import ModelConfig, RunKind, Server, parse_model_ref, utcnow
from mer.errors import EXIT_INTERRUPTED, EXIT_OUTPUT_CLOSED, EditNotAllowed, MerError, UsageError
from mer.execution.interface import Sinks
from mer.logfile import internal_error_line
from mer.services import models as model_svc
from mer.services import runs as run_svc
from mer.services import servers as server_svc
from mer.services import weights as weight_svc
from mer.services.context import ServiceContext
from mer.shell import render
from mer.shell.bridge import AsyncBridge, InlineBridge
from mer.shell.completion import CompletionCache, build_cache

__all__ = ["MerShell"]

log = logging.getLogger("mer.shell")

# `set` is not here: with two arguments it is cmd2's settings command; with three it is
# a model edit, which the service refuses without --allow-edit.
EDIT_COMMANDS = ("model", "param", "server")
# Names users of the original Rust MER know; each expands to a mer command.
MER_ALIASES = {
    "model-list": "models", "ls": "models", "model-info": "show", "model-ping": "ping",
    "model-execute": "run", "model-modify": "set", "model-create": "model add",
    "model-delete": "model remove", "model-continuous-feedback": "feed",
}
CATEGORY_READ, CATEGORY_RUN, CATEGORY_EDIT = "Read", "Run", "Edit (needs --allow-edit)"


def _reports(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn errors raised by a command into one line on stderr and an exit status."""

    @functools.wraps(fn)
    def wrapper(self: MerShell, *args: Any) -> Any:
        try:
            return fn(self, *args)
        except MerError as err:
            self.fail(f"error: {err}", err.exit_code)
        except KeyboardInterrupt:
            self.fail("cancelled", EXIT_INTERRUPTED)
        except Exception as err:  # a bug in mer, not the user's mistake
            self.internal_error(err, fn.__name__)
        return None

    return wrapper


class _BadArguments(SystemExit):
    """What MerArgumentParser.error raises: argparse's way out (SystemExit, status 2),
    carrying the one line to show; MerShell.onecmd prints it."""

    def __init__(self, message: str) -> None:
        super().__init__(2)
        self.message = message


class MerArgumentParser(Cmd2ArgumentParser):
    """A command's parser whose errors are one line naming the command and its help,
    instead of argparse's usage block followed by the error."""

    def error(self, message: str) -> NoReturn:
        text = " ".join(message.split())
        raise _BadArguments(f"{self.prog}: {text} (see `help {self.prog}`)")


# cmd2's own commands (help, alias, macro, history, ...) build their parsers from this.
cmd2.set_default_argument_parser(MerArgumentParser)


def _parser(description: str) -> Cmd2ArgumentParser:
    return MerArgumentParser(description=description)


def _add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON for programs")


def _since(text: str) -> datetime:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhd])", text.strip())
    if m:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[m.group(2)]
        return utcnow() - timedelta(**{unit: float(m.group(1))})
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"--since '{text}' is not a time; use e.g. 30m, 2h, 1d or 2026-11-24T10:00"
        ) from None
    return ts if ts.tzinfo else ts.astimezone()


class _SeenRevisions(Mapping[tuple[UUID, str], int]):
    """The newest weight revision this shell has shown, by (model id, vector name). Where
    the shell listed all of a model's vectors, a name it did not list was seen as none
    (revision 0): a vector someone else creates meanwhile is not silently overwritten."""

    def __init__(self) -> None:
        self._revisions: dict[tuple[UUID, str], int] = {}
        self._listed: set[UUID] = set()

    def saw(self, model_id: UUID, name: str, revision: int) -> None:
        self._revisions[(model_id, name)] = revision

    def saw_all(self, model_id: UUID, revisions: Iterable[tuple[str, int]]) -> None:
        self._revisions = {k: v for k, v in self._revisions.items() if k[0] != model_id}
        self._listed.add(model_id)
        for name, revision in revisions:
            self.saw(model_id, name, revision)

    def __getitem__(self, key: tuple[UUID, str]) -> int:
        if key in self._revisions:
            return self._revisions[key]
        if key[0] in self._listed:
            return 0
        raise KeyError(key)

    def __iter__(self) -> Iterator[tuple[UUID, str]]:
        return iter(self._revisions)

    def __len__(self) -> int:
        return len(self._revisions)


class MerShell(cmd2.Cmd):
    # Built-ins that run arbitrary code or could get around the edit gate are removed.
    do_shell = None
    do_run_pyscript = None
    do_edit = None
    do_py = None
    do_ipy = None

    def __init__(self, start_runtime: Callable[[], concurrent.futures.Future[Runtime]],
                 bridge: AsyncBridge | InlineBridge, *,
                 json_output: bool = False, allow_edit: bool = False, stdin: Any = None,
                 stdout: Any = None, history_file: str = "") -> None:
        super().__init__(
            stdin=stdin, stdout=stdout, allow_cli_args=False, include_py=False,
            allow_redirection=False, shortcuts={}, persistent_history_file=history_file,
            auto_load_commands=False,
        )
        self.prompt = "mer> "
        self.default_category = "Shell"
        self._start_runtime = start_runtime
        self._runtime_future: concurrent.futures.Future[Runtime] | None = None
        self.bridge = bridge
        self.json_output = json_output
        self.allow_edit = allow_edit
        self.failed = False  # any command failed since start (for scripted runs)
        self.closed_output = False  # the reader of stdout went away (see output_closed)
        self.cache = CompletionCache()
        self._refreshing: concurrent.futures.Future[Any] | None = None
        # What this shell last showed, so that an edit from a stale view is refused:
        self._seen_versions: dict[str, int] = {}  # model ref -> row version
        self._seen_params: dict[UUID, int] = {}  # model id -> parameters' row version
        self._seen_weights = _SeenRevisions()  # (model id, vector) -> newest revision
        self.aliases.update(MER_ALIASES)
        self.remove_settable("editor")  # its `edit` command is removed
        if not allow_edit:
            for command in EDIT_COMMANDS:
                self.disable_command(command, str(EditNotAllowed()))
        self.register_postcmd_hook(self._after_command)

    # -- plumbing ---------------------------------------------------------------------

    @property
    def ctx(self) -> ServiceContext:
        # The runtime is built on the loop (in the background when interactive); the first
        # command that needs it waits for it.
        # NOTE: asked every time: a start that failed on an unreachable database is
        # started again (mer/cli.py), so the database coming back is noticed.
        self._runtime_future = self._start_runtime()
        return self._runtime_future.result().ctx

    def call(self, coro: Any) -> Any:
        self.ctx  # noqa: B018 - surface a start-up error (bad database) before running
        return self.bridge.call(coro)

    def fail(self, message: str, code: int = 1) -> None:
        self.failed = True
        self.exit_code = code
        self.perror(message, style=None)

    def _report_disabled_command_usage(self, *args: Any, message_to_print: str) -> None:
        self.fail(f"error: {message_to_print}", 1)

    def onecmd(self, statement: Any, *, add_to_history: bool = True) -> bool:
        try:
            return super().onecmd(statement, add_to_history=add_to_history)
        except Cmd2ArgparseError as err:
            cause = err.__cause__
            if isinstance(cause, _BadArguments):
                self.fail(f"error: {cause.message}", 2)
            elif not (isinstance(cause, SystemExit) and cause.code in (0, None)):
                self.failed, self.exit_code = True, 2
            raise

    def default(self, statement: Any) -> bool | None:
        self.fail(f"error: unknown command '{statement.command}'; see `help`", 2)
        return None

    def pexcept(self, exception: BaseException, **kwargs: Any) -> None:
        # cmd2 calls this for what escaped a command's own reporting (a hook, a built-in).
        self.internal_error(exception, "command")

    def internal_error(self, err: BaseException, where: str) -> None:
        """A bug in mer: one line on stderr, the traceback in the log file (and on screen
        with --debug)."""
        if self.debug:
            traceback.print_exception(err, file=sys.stderr)
        self.fail(internal_error_line(err, where), 1)

    def out(self, text: str) -> None:
        try:
            self.stdout.write(text if text.endswith("\n") else text + "\n")
        except BrokenPipeError:
            self.output_closed()

    def output_closed(self) -> None:
        """Whoever read mer's output went away (`mer < job.mer | head`). As any program in
        a pipeline, mer stops: the command under way is cancelled (a run is recorded
        cancelled, its model killed) and mer exits 141, as if SIGPIPE had ended it."""
        self.closed_output = True
        if isinstance(self.bridge, InlineBridge):
            self.bridge.interrupt(SystemExit(EXIT_OUTPUT_CLOSED))  # raises between commands
        elif threading.current_thread() is threading.main_thread():
            raise SystemExit(EXIT_OUTPUT_CLOSED)
        # NOTE: else a model's output, on the interactive loop's thread: it is dropped
        # from now on, and the command raises when it ends (MerShell._run).

    def want_json(self, args: argparse.Namespace) -> bool:
        return self.json_output or bool(getattr(args, "json", False))

    def _after_command(self, data: cmd2.plugin.PostcommandData) -> cmd2.plugin.PostcommandData:
        if data.statement.command in ("model", "set", "param", "server", "weights"):
            self.refresh_cache()
        return data

    def refresh_cache(self) -> None:
        """Rebuild the completion cache on the loop; a rebuild under way is replaced."""
        if not self.bridge.background:
            return  # a script completes nothing: no rebuild to wait for between commands
        future = self._runtime_future = self._start_runtime()
        if not future.done() or future.exception() is not None:
            return
        if self._refreshing is not None and not self._refreshing.done():
            self._refreshing.cancel()

        async def rebuild() -> None:
            try:
                self.cache = await build_cache(self.ctx)
            except MerError:
                log.debug("completion refresh failed", exc_info=True)

        self._refreshing = self.bridge.submit(rebuild())

    # -- completion providers (read the cache only) -----------------------------------

    def _models(self) -> Choices:
        return Choices.from_values(self.cache.models)

    def _servers(self) -> Choices:
        return Choices.from_values(self.cache.servers)

    def _set_words(self, arg_tokens: dict[str, list[str]]) -> Choices:
        # `set MODEL FIELD VALUE`: a model first, then one of its fields.
        position = len(arg_tokens.get("words", [])) - 1
        names = {0: self.cache.models, 1: self.cache.fields}.get(position, ())
        return Choices.from_values(names)

    def _params(self, arg_tokens: dict[str, list[str]]) -> Choices:
        ref = (arg_tokens.get("model") or [None])[0]
        return Choices.from_values(self.cache.for_model(self.cache.params, ref))

    def _servers_and_models(self) -> Choices:
        return Choices.from_values(self.cache.servers + self.cache.models)

    def _weights(self, arg_tokens: dict[str, list[str]]) -> Choices:
        ref = (arg_tokens.get("model") or [None])[0]
        return Choices.from_values(self.cache.for_model(self.cache.weights, ref))

    # -- read commands ----------------------------------------------------------------

    models_parser = _parser("List the models.")
    models_parser.add_argument("--server", choices_provider=_servers, help="only this server's models")
    _add_json(models_parser)

    @with_argparser(models_parser)
    @cmd2.with_category(CATEGORY_READ)
    @_reports
    def do_models(self, args: argparse.Namespace) -> None:
        """List the models."""
        models = self.call(model_svc.list_models(self.ctx, args.server))
        if self.want_json(args):
            self.out(render.dumps([model_svc.model_image(m) for m in models]))
            return
        rows = [[m.name, m.version, m.server, m.mode, "yes" if m.enabled else "no",
                 m.description[:50]] for m in models]
        self.out(render.table(["model", "version", "server", "mode", "enabled", "description"], rows))

    show_parser = _parser("Show a model: fixed fields, parameters and its weight vectors.")
    show_parser.add_argument("model", choices_provider=_models, help="MODEL or MODEL@VERSION")
    _add_json(show_parser)

    @with_argparser(show_parser)
    @cmd2.with_category(CATEGORY_READ)
    @_reports
    def do_show(self, args: argparse.Namespace) -> None:
        """Show a model."""
        view = self.call(model_svc.show_model(self.ctx, args.model))
        m = view.model
        self._seen_versions[m.ref] = m.row_version
        self._seen_params[m.id] = view.parameters_version
        self._seen_weights.saw_all(m.id, ((w.name, w.revision) for w in view.weights))
        if self.want_json(args):
            image = model_svc.model_image(m)
            image["parameters"] = view.parameters
            image["weights"] = [
                {"name": w.name, "revision": w.revision, "length": w.length, "sha256": w.sha256,
                 "author": w.author, "created_at": w.created_at} for w in view.weights
            ]
            self.out(render.dumps(image))
            return
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
            f"  row version:  {m.row_version} (updated {render.when(m.updated_at)})",
            f"  parameters:   {render.dumps(view.parameters) if view.parameters else '-'}",
        ]
        self.out("\n".join(lines))
        if view.weights:
            rows = [[w.name, w.revision, w.length, w.sha256[:12], w.author, render.when(w.created_at)]
                    for w in view.weights]
            self.out("  weights:\n" + "".join(
                "    " + line + "\n"
                for line in render.table(["name", "rev", "length", "sha256", "author", "updated"],
                                         rows).splitlines()))
        else:
            self.out("  weights:      -")

    servers_parser = _parser("List the servers models run on.")
    _add_json(servers_parser)

    @with_argparser(servers_parser)
    @cmd2.with_category(CATEGORY_READ)
    @_reports
    def do_servers(self, args: argparse.Namespace) -> None:
        """List the servers."""
        servers = self.call(server_svc.list_servers(self.ctx))
        if self.want_json(args):
            self.out(render.dumps([server_svc.server_image(s) for s in servers]))
            return
        self.out(render.table(["server", "kind", "host", "port", "user", "max runs", "enabled"],
                              render.server_rows(servers)))

    ping_parser = _parser("Check a server: reachable? host key known? latency. "
                          "Given a model, checks the model's server.")
    ping_parser.add_argument("server", choices_provider=_servers_and_models, help="SERVER or MODEL")
    _add_json(ping_parser)

    @with_argparser(ping_parser)
    @cmd2.with_category(CATEGORY_READ)
    @_reports
    def do_ping(self, args: argparse.Namespace) -> None:
        """Check a server."""
        name = args.server
        if name not in self.cache.servers:
            async def server_of() -> str:
                try:
                    return (await server_svc.get_server(self.ctx, name)).name
                except MerError:
                    view = await model_svc.show_model(self.ctx, name)
                    return view.model.server
            name = self.call(server_of())
        check = self.call(server_svc.ping_server(self.ctx, name))
        if self.want_json(args):
            self.out(render.dumps({"server": check.server, "reachable": check.reachable,
                                   "latency_ms": check.latency_ms, "host_key_known": check.host_key_known,
                                   "fingerprint": check.fingerprint, "message": check.message}))
        else:
            key = {None: "n/a", True: "known", False: "UNKNOWN"}[check.host_key_known]
            latency = f"{check.latency_ms:.1f} ms" if check.latency_ms is not None else "-"
            state = "reachable" if check.reachable else "UNREACHABLE"
            self.out(f"{check.server}: {state}; host key {key}; latency {latency}"
                     + (f"; {check.message}" if check.message else ""))
        if not check.reachable:
            self.failed, self.exit_code = True, 1

    runs_parser = _parser("The access log: one row per run. `runs show ID` shows one whole.")
    runs_parser.add_argument("action", nargs="?", choices=["show"], help="show one run")
    runs_parser.add_argument("run_id", nargs="?", help="run id (a unique prefix is enough)")
    runs_parser.add_argument("--model", choices_provider=_models, help="only this model's runs")
    runs_parser.add_argument("--status", choices=["running", "succeeded", "failed", "timeout",
                                                  "cancelled", "lost"])
    runs_parser.add_argument("--since", help="only runs since: 30m, 2h, 1d or an ISO time")
    runs_parser.add_argument("--limit", type=int, default=20, help="at most N runs (default 20)")
    _add_json(runs_parser)

    @with_argparser(runs_parser)
    @cmd2.with_category(CATEGORY_READ)
    @_reports
    def do_runs(self, args: argparse.Namespace) -> None:
        """Show the access log."""
        if args.action == "show" or args.run_id:
            if not args.run_id:
                raise UsageError("runs show needs a run id; see `runs`")
            record = self.call(run_svc.get_run(self.ctx, args.run_id))
            image = render.run_image(record, full=True)
            if self.want_json(args):
                self.out(render.dumps(image))
                return
            for key in ("id", "model", "version", "server", "kind", "status", "exit_code",
                        "os_user", "weight_revisions", "bytes_in", "bytes_out", "result", "error"):
                value = image[key]
                self.out(f"{key + ':':18}{render.dumps(value) if isinstance(value, (dict, list)) else value}")
            self.out(f"{'started_at:':18}{render.when(record.started_at)}")
            self.out(f"{'finished_at:':18}{render.when(record.finished_at)}")
            self.out(f"{'duration_ms:':18}{image['duration_ms']}")
            self.out("--- stdout ---\n" + (record.stdout or "") + "--- stderr ---\n" + (record.stderr or ""))
            return
        since = _since(args.since) if args.since else None
        records = self.call(run_svc.list_runs(self.ctx, args.model, args.status, since, args.limit))
        if self.want_json(args):
            self.out(render.dumps([render.run_image(r) for r in records]))
            return
        rows = [[str(r.id)[:8], f"{r.model}@{r.version}", r.server, r.kind, r.status,
                 "-" if r.exit_code is None else r.exit_code, render.when(r.started_at),
                 "-" if r.duration_ms is None else f"{r.duration_ms:.0f} ms", r.os_user]
                for r in records]
        self.out(render.table(["run", "model", "server", "kind", "status", "exit", "started",
                               "duration", "user"], rows))

    weights_parser = _parser(
        "Show weight vectors: `weights MODEL [NAME] [--history] [--head N]`. Edits (with "
        "--allow-edit): `weights set MODEL NAME --values 0.1,0.2 | --file F.npy|.json|.csv`, "
        "`weights set MODEL NAME[I]=V`, `weights rollback MODEL NAME REV`."
    )
    weights_parser.add_argument("model", choices_provider=_models,
                                help="MODEL[@VERSION], or `set` / `rollback`")
    weights_parser.add_argument("rest", nargs="*", choices_provider=_weights,
                                help="NAME, or the edit's arguments")
    weights_parser.add_argument("--history", action="store_true", help="every revision of NAME")
    weights_parser.add_argument("--head", type=int, help="show the first N values")
    weights_parser.add_argument("--values", help="(set) comma-separated numbers")
    weights_parser.add_argument("--file", type=Path, help="(set) a .npy, .json or .csv file")
    weights_parser.add_argument("--note", default="", help="(set) a note for the revision")
    _add_json(weights_parser)

    @with_argparser(weights_parser)
    @cmd2.with_category(CATEGORY_READ)
    @_reports
    def do_weights(self, args: argparse.Namespace) -> None:
        """Show or edit weight vectors."""
        if args.model in ("set", "rollback"):
            self._weights_edit(args)
            return
        if len(args.rest) > 1:
            raise UsageError("usage: weights MODEL [NAME] [--history] [--head N]")
        name = args.rest[0] if args.rest else None
        if args.history:
            if name is None:
                raise UsageError("--history needs a weight vector NAME")
            revs = self.call(weight_svc.weight_history(self.ctx, args.model, name))
            newest = max(revs, key=lambda w: w.revision)
            self._seen_weights.saw(newest.model_id, newest.name, newest.revision)
            if self.want_json(args):
                self.out(render.dumps([render.weight_image(w, values=False) for w in revs]))
                return
            self.out(render.table(["rev", "length", "sha256", "author", "created", "note"],
                                  [[w.revision, w.length, w.sha256[:12], w.author,
                                    render.when(w.created_at), w.note] for w in revs]))
            return
        revs = self.call(weight_svc.show_weights(self.ctx, args.model, name))
        if name is not None:
            self._seen_weights.saw(revs[0].model_id, revs[0].name, revs[0].revision)
        elif revs:
            self._seen_weights.saw_all(revs[0].model_id, ((w.name, w.revision) for w in revs))
        head = args.head if args.head is not None else (None if self.want_json(args) else 8)
        if self.want_json(args):
            images = [render.weight_image(w, head) for w in revs]
            self.out(render.dumps(images[0] if name else images))
            return
        for w in revs:
            vals = w.values.tolist()
            shown = ", ".join(f"{v:g}" for v in vals[:head])
            more = f", ... ({w.length - head} more)" if head is not None and w.length > head else ""
            self.out(f"{w.name}  rev {w.revision}  length {w.length}  sha256 {w.sha256[:12]}  "
                     f"by {w.author}\n  [{shown}{more}]")
        if not revs:
            self.out("no weight vectors")

    def _weights_edit(self, args: argparse.Namespace) -> None:
        if not self.allow_edit:
            raise EditNotAllowed()
        if args.model == "rollback":
            if len(args.rest) != 3:
                raise UsageError("usage: weights rollback MODEL NAME REV")
            ref, name, rev = args.rest
            try:
                revision = int(rev)
            except ValueError:
                raise UsageError(f"revision '{rev}' is not a number") from None
            new = self.call(weight_svc.rollback_weights(self.ctx, ref, name, revision,
                                                        self._seen_weights))
        else:
            if not args.rest or len(args.rest) > 2:
                raise UsageError("usage: weights set MODEL NAME (--values V,.. | --file F) "
                                 "or weights set MODEL NAME[I]=V")
            ref = args.rest[0]
            target = args.rest[1] if len(args.rest) == 2 else ""
            element = re.fullmatch(r"([^\[\]=]+)\[(-?\d+)\]=(.+)", target)
            if element:
                name, index, value = element.group(1), int(element.group(2)), element.group(3)
                try:
                    number = float(value)
                except ValueError:
                    raise UsageError(f"'{value}' is not a number") from None
                new = self.call(weight_svc.set_weight_element(self.ctx, ref, name, index, number,
                                                              args.note, self._seen_weights))
            else:
                name = target
                if not name:
                    raise UsageError("weights set needs a vector NAME")
                if (args.values is None) == (args.file is None):
                    raise UsageError("give exactly one of --values V,V,... or --file F")
                values = (weight_svc.parse_values(args.values) if args.values is not None
                          else weight_svc.read_weights_file(args.file))
                new = self.call(weight_svc.set_weights(self.ctx, ref, name, values, args.note,
                                                       self._seen_weights))
        self._seen_weights.saw(new.model_id, new.name, new.revision)
        if self.want_json(args):
            self.out(render.dumps(render.weight_image(new, values=False)))
        else:
            self.out(f"{new.name}: revision {new.revision} ({new.length} values, "
                     f"sha256 {new.sha256[:12]})")

    workers_parser = _parser("List the live worker processes this shell keeps.")
    _add_json(workers_parser)

    @with_argparser(workers_parser)
    @cmd2.with_category(CATEGORY_READ)
    @_reports
    def do_workers(self, args: argparse.Namespace) -> None:
        """List live workers."""
        workers = run_svc.list_workers(self.ctx)
        if self.want_json(args):
            self.out(render.dumps([{"server": w.server, "model": w.model, "version": w.version,
                                    "pid": w.pid, "started_at": w.started_at,
                                    "requests": w.requests} for w in workers]))
            return
        self.out(render.table(["server", "model", "pid", "started", "requests"],
                              render.worker_rows(workers)))

    refresh_parser = _parser("Refresh the names that Tab completes.")

    @with_argparser(refresh_parser)
    @cmd2.with_category(CATEGORY_READ)
    @_reports
    def do_refresh(self, _: argparse.Namespace) -> None:
        """Refresh completion names."""
        self.cache = self.call(build_cache(self.ctx))

    # -- run commands -----------------------------------------------------------------

    @staticmethod
    def _run_parser(description: str, models: Any, servers: Any) -> Cmd2ArgumentParser:
        p = _parser(description)
        p.add_argument("model", choices_provider=models, help="MODEL or MODEL@VERSION")
        src = p.add_mutually_exclusive_group()
        src.add_argument("--input", type=Path, completer=cmd2.Cmd.path_complete,
                         help="a file whose content (JSON when it parses) is the input")
        src.add_argument("--data", help="the input as JSON")
        p.add_argument("--param", action="append", metavar="K=V",
                       help="override a parameter for this run (V parsed as JSON when it is)")
        p.add_argument("--server", choices_provider=servers, help="run on this server")
        p.add_argument("--timeout", type=float, help="seconds before the run is killed")
        _add_json(p)
        return p

    def _run(self, args: argparse.Namespace, kind: RunKind) -> None:
        as_json = self.want_json(args)
        model_out = sys.stderr if as_json else sys.stdout

        def write(stream: Any) -> Callable[[bytes], None]:
            buffer = getattr(stream, "buffer", None)

            def sink(chunk: bytes) -> None:
                if self.closed_output:
                    return
                try:
                    if buffer is not None:
                        buffer.write(chunk)
                        buffer.flush()
                    else:
                        stream.write(chunk.decode("utf-8", "replace"))
                        stream.flush()
                except BrokenPipeError:
                    self.output_closed()
            return sink

        try:
            sys.stdout.flush()
        except BrokenPipeError:
            self.output_closed()
        record, _ = self.call(run_svc.run_model(
            self.ctx, args.model, input=run_svc.load_input(args.input, args.data),
            params=run_svc.parse_param_overrides(args.param), server=args.server,
            timeout=args.timeout, kind=kind, sinks=Sinks(stdout=write(model_out), stderr=write(sys.stderr)),
        ))
        if self.closed_output:
            raise SystemExit(EXIT_OUTPUT_CLOSED)
        if as_json:
            self.out(render.dumps(render.run_image(record)))
        else:
            sys.stderr.write(render.run_summary(record) + "\n")
            sys.stderr.flush()
        if str(record.status) != "succeeded":
            self.failed, self.exit_code = True, 1

    run_parser = _run_parser.__func__("Run a model; its output streams live, then a one-line summary.",
                                      _models, _servers)

    @with_argparser(run_parser)
    @cmd2.with_category(CATEGORY_RUN)
    @_reports
    def do_run(self, args: argparse.Namespace) -> None:
        """Run a model."""
        self._run(args, RunKind.RUN)

    train_parser = _run_parser.__func__("Run a model's training command.", _models, _servers)

    @with_argparser(train_parser)
    @cmd2.with_category(CATEGORY_RUN)
    @_reports
    def do_train(self, args: argparse.Namespace) -> None:
        """Train a model."""
        self._run(args, RunKind.TRAIN)

    stop_parser = _parser("End a model's worker processes.")
    stop_parser.add_argument("model", choices_provider=_models)

    @with_argparser(stop_parser)
    @cmd2.with_category(CATEGORY_RUN)
    @_reports
    def do_stop(self, args: argparse.Namespace) -> None:
        """End a model's workers."""
        count = self.call(run_svc.stop_model(self.ctx, args.model))
        self.out(f"stopped {count} worker(s) of {args.model}")

    feed_parser = _parser("Send each line you type to the model and print each answer, until "
                          "an empty line or Ctrl-D: a chat with a loaded worker.")
    feed_parser.add_argument("model", choices_provider=_models)
    feed_parser.add_argument("--timeout", type=float, help="seconds to wait for each answer")

    @with_argparser(feed_parser)
    @cmd2.with_category(CATEGORY_RUN)
    @_reports
    def do_feed(self, args: argparse.Namespace) -> None:
        """Chat with a model's worker."""
        interactive = self.stdin.isatty()
        while True:
            try:
                line = self.read_input(f"{args.model}> ") if interactive else self.stdin.readline()
            except EOFError:
                break
            if not interactive and line == "":
                break
            line = line.rstrip("\r\n")
            if not line.strip():
                break
            try:
                value: Any = run_svc.load_input(data=line)
            except UsageError:
                value = line
            record, _ = self.call(run_svc.run_model(self.ctx, args.model, input=value,
                                                    timeout=args.timeout))
            if str(record.status) == "succeeded":
                answer = record.result
                self.out(answer if isinstance(answer, str) else render.dumps(answer))
            else:
                self.fail(render.run_summary(record), 1)  # as `run` ends a failed run

    # -- edit commands (disabled without --allow-edit; the services enforce it too) ------

    model_parser = _parser("Add, remove, enable or disable a model.")
    model_sub = model_parser.add_subparsers(dest="action", required=True)
    _add = model_sub.add_parser("add", help="register a model")
    _add.add_argument("model", help="NAME or NAME@VERSION")
    _add.add_argument("--server", required=True, choices_provider=_servers)
    _add.add_argument("--command", required=True, help='the argv, split like a POSIX shell: "python3 m.py"')
    _add.add_argument("--mode", choices=["oneshot", "worker"], default="oneshot")
    _add.add_argument("--framing", choices=["jsonl", "mer"], default="jsonl")
    _add.add_argument("--workdir", completer=cmd2.Cmd.path_complete)
    _add.add_argument("--timeout", type=float)
    _add.add_argument("--train-command", help="the training argv")
    _add.add_argument("--description", default="")
    for _name, _help in (("remove", "delete a model with its parameters and weights"),
                         ("enable", "allow runs"), ("disable", "refuse runs")):
        model_sub.add_parser(_name, help=_help).add_argument("model", choices_provider=_models)

    @with_argparser(model_parser)
    @cmd2.with_category(CATEGORY_EDIT)
    @_reports
    def do_model(self, args: argparse.Namespace) -> None:
        """Add, remove, enable or disable a model."""
        if args.action == "add":
            name, version = parse_model_ref(args.model)
            try:
                command = shlex.split(args.command)
                train = shlex.split(args.train_command) if args.train_command else None
            except ValueError as err:
                raise UsageError(f"--command: {err}") from None
            model = ModelConfig(name=name, version=version or "1", server=args.server,
                                command=command, train_command=train, mode=args.mode,
                                framing=args.framing, workdir=args.workdir, timeout=args.timeout,
                                description=args.description)
            stored = self.call(model_svc.add_model(self.ctx, model))
            self._seen_versions[stored.ref] = stored.row_version
            self.out(f"added {stored.ref}")
        elif args.action == "remove":
            removed = self.call(model_svc.remove_model(self.ctx, args.model, self._seen_versions))
            self._seen_versions.pop(removed.ref, None)
            self.out(f"removed {removed.ref}")
        else:
            stored = self.call(model_svc.set_model_enabled(
                self.ctx, args.model, args.action == "enable", self._seen_versions))
            self._seen_versions[stored.ref] = stored.row_version
            self.out(f"{args.action}d {stored.ref}")

    set_parser = _parser("Set a fixed field of a model: `set MODEL FIELD VALUE` (needs "
                         "--allow-edit). With two arguments, `set NAME VALUE` changes a shell "
                         "setting (debug, timing, ...).")
    set_parser.add_argument("words", nargs="*", choices_provider=_set_words,
                            help="MODEL FIELD VALUE, or SETTING VALUE")

    @with_argparser(set_parser)
    @cmd2.with_category(CATEGORY_EDIT)
    @_reports
    def do_set(self, args: argparse.Namespace) -> None:
        """Set a fixed field of a model (or a shell setting)."""
        if len(args.words) != 3:
            cmd2.Cmd.do_set(self, shlex.join(args.words))
            return
        ref, field, value = args.words
        stored = self.call(model_svc.set_model_field(self.ctx, ref, field, value,
                                                     self._seen_versions))
        self._seen_versions[stored.ref] = stored.row_version
        self.out(f"{stored.ref}: {field} set (row version {stored.row_version})")

    param_parser = _parser("Edit a model's parameters: `param MODEL set KEY VALUE` (VALUE is "
                           "parsed as JSON when it is JSON) or `param MODEL unset KEY`.")
    param_parser.add_argument("model", choices_provider=_models)
    param_parser.add_argument("action", choices=["set", "unset"])
    param_parser.add_argument("key", choices_provider=_params)
    param_parser.add_argument("value", nargs="?")

    @with_argparser(param_parser)
    @cmd2.with_category(CATEGORY_EDIT)
    @_reports
    def do_param(self, args: argparse.Namespace) -> None:
        """Edit a model's parameters."""
        if args.action == "set":
            if args.value is None:
                raise UsageError("usage: param MODEL set KEY VALUE")
            params = self.call(model_svc.set_param(self.ctx, args.model, args.key, args.value,
                                                   self._seen_params))
        else:
            if args.value is not None:
                raise UsageError("usage: param MODEL unset KEY")
            params = self.call(model_svc.unset_param(self.ctx, args.model, args.key,
                                                     self._seen_params))
        self._seen_params[params.model_id] = params.row_version
        self.out(f"{args.model} parameters: {render.dumps(params.values)}")

    server_parser = _parser("Add, remove or trust (record the SSH host key of) a server.")
    server_sub = server_parser.add_subparsers(dest="action", required=True)
    _sadd = server_sub.add_parser("add", help="register a server")
    _sadd.add_argument("name")
    _sadd.add_argument("--kind", required=True, help="local, ssh or a plugin's kind")
    _sadd.add_argument("--host")
    _sadd.add_argument("--port", type=int)
    _sadd.add_argument("--user")
    _sadd.add_argument("--identity", help="private key file (a path; never stored as a key)")
    _sadd.add_argument("--known-hosts", help="known_hosts file for this server")
    _sadd.add_argument("--max-runs", type=int, default=4)
    for _name, _help in (("remove", "delete a server (it must have no models)"),
                         ("trust", "fetch the host key and add it to known_hosts")):
        server_sub.add_parser(_name, help=_help).add_argument("name", choices_provider=_servers)

    @with_argparser(server_parser)
    @cmd2.with_category(CATEGORY_EDIT)
    @_reports
    def do_server(self, args: argparse.Namespace) -> None:
        """Add, remove or trust a server."""
        if args.action == "add":
            server = Server(name=args.name, kind=args.kind, host=args.host, port=args.port,
                            user=args.user, identity_file=args.identity,
                            known_hosts=args.known_hosts, max_runs=args.max_runs)
            stored = self.call(server_svc.add_server(self.ctx, server))
            self.out(f"added server {stored.name} ({stored.kind})")
        elif args.action == "remove":
            self.call(server_svc.remove_server(self.ctx, args.name))
            self.out(f"removed server {args.name}")
        else:
            fingerprint = self.call(server_svc.trust_server(self.ctx, args.name))
            self.out(f"trusted {args.name}: {fingerprint}")
