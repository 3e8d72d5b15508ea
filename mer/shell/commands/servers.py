"""`server list|show|add|remove|trust|ping`: the machines models run on."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from mer.lazy import lazy_module
from mer.shell import render
from mer.shell.commands.base import MerCommands, command, dispatch, verb
from mer.shell.confirm import confirm
from mer.shell.parsing import Later, add_json, parser

if TYPE_CHECKING:
    from mer import domain
    from mer.domain import Server, ServerCheck
    from mer.services import servers as server_svc
else:
    domain = lazy_module("mer.domain")
    server_svc = lazy_module("mer.services.servers")

__all__ = ["ServerCommands"]

_noun = parser("Servers: list, show, ping; add, remove, trust. `server NAME` shows one.")
_noun.add_subparsers(title="verbs", metavar="VERB", required=True)

_list = parser("List the servers models run on.")
add_json(_list)

_show = parser("Show a server.")
_show.add_argument("name", choices_provider=MerCommands._servers)
add_json(_show)

_ping = parser("Check a server: reachable? host key known? latency. Given a model, checks "
               "the model's server.")
_ping.add_argument("name", completer=MerCommands._servers_and_models, help="SERVER or MODEL")
add_json(_ping)

_add = parser("Register a server.")
_add.add_argument("name")
_add.add_argument("--kind", required=True, help="local, ssh, container, slurm or a plugin's kind")
_add.add_argument("--engine", choices=Later(lambda: domain.ENGINES),
                  help="kind container: the engine's CLI (default podman); with --host it runs "
                  "there, over SSH")
_add.add_argument("--host")
_add.add_argument("--port", type=int)
_add.add_argument("--user")
_add.add_argument("--identity", help="private key file (a path; never stored as a key)")
_add.add_argument("--known-hosts", help="known_hosts file for this server")
_add.add_argument("--max-runs", type=int, default=4)
_add.add_argument("--partition", help="kind slurm: the partition its jobs go to")
_add.add_argument("--account", help="kind slurm: the account its jobs are charged to")
_add.add_argument("--slurm-args", metavar="ARGS",
                  help='kind slurm: more srun/sbatch options, each --name=value ("--mem=4G --qos=low")')
add_json(_add)

_set = parser("Change a field of a server: `server set NAME FIELD VALUE` (FIELD: host, port, "
              "user, identity, known-hosts, max-runs, enabled, engine, partition, account, "
              "slurm-args; `-` clears one).")
_set.add_argument("name", choices_provider=MerCommands._servers)
_set.add_argument("field", choices=Later(lambda: list(server_svc.SERVER_FIELDS)))
_set.add_argument("value")
add_json(_set)

_remove = parser("Delete a server (it must have no models).")
_remove.add_argument("name", choices_provider=MerCommands._servers)
add_json(_remove)

_trust = parser("Fetch an SSH server's host key and add it to known_hosts: in a terminal "
                "after you check its fingerprint; in a script with --yes, or --fingerprint to "
                "accept only the key you expect.")
_trust.add_argument("name", choices_provider=MerCommands._servers)
_trust.add_argument("--yes", action="store_true", help="trust the key the server presents now")
_trust.add_argument("--fingerprint", metavar="SHA256:...", help="trust only a key of this fingerprint")
add_json(_trust)


def _check_text(check: ServerCheck) -> str:
    key = {None: "n/a", True: "known", False: "UNKNOWN"}[check.host_key_known]
    latency = f"{check.latency_ms:.1f} ms" if check.latency_ms is not None else "-"
    state = "reachable" if check.reachable else "UNREACHABLE"
    return (f"{check.server}: {state}; host key {key}; latency {latency}"
            + (f"; {check.message}" if check.message else ""))


def _server_text(s: Server) -> str:
    image = server_svc.server_image(s)
    return "\n".join(f"{key + ':':15}{'-' if value in (None, '') else value}"
                     for key, value in image.items())


class ServerCommands(MerCommands):

    @command(_noun, "Servers")
    def do_server(self, args: argparse.Namespace) -> None:
        """Servers: list, show, ping; add, remove, trust (edits need --allow-edit)."""
        dispatch(self, args)

    @verb("server", "list", _list)
    def server_list(self, args: argparse.Namespace) -> None:
        servers = self.call(server_svc.list_servers(self.ctx()))
        self.seen.servers.update({s.name: s.row_version for s in servers})
        self.emit(args, [server_svc.server_image(s) for s in servers], lambda: render.Table(
            ["server", "kind", "host", "port", "user", "max runs", "enabled"],
            render.server_rows(servers)))

    @verb("server", "show", _show)
    def server_show(self, args: argparse.Namespace) -> None:
        server = self.call(server_svc.get_server(self.ctx(), args.name))
        self.seen.servers[server.name] = server.row_version
        self.emit(args, server_svc.server_image(server), lambda: _server_text(server))

    @verb("server", "ping", _ping)
    def server_ping(self, args: argparse.Namespace) -> None:
        check = self.call(server_svc.ping(self.ctx(), args.name))
        self.emit(args, {"server": check.server, "reachable": check.reachable,
                         "latency_ms": check.latency_ms, "host_key_known": check.host_key_known,
                         "fingerprint": check.fingerprint, "message": check.message},
                  lambda: _check_text(check))
        if not check.reachable:
            self.shell.failed, self.shell.exit_code = True, 1

    @verb("server", "add", _add, edits=True)
    def server_add(self, args: argparse.Namespace) -> None:
        server = domain.Server(name=args.name, kind=args.kind, host=args.host, port=args.port,
                        user=args.user, identity_file=args.identity,
                        known_hosts=args.known_hosts, max_runs=args.max_runs,
                        engine=args.engine, partition=args.partition, account=args.account,
                        slurm_args=args.slurm_args)
        stored = self.call(server_svc.add_server(self.ctx(), server))
        self.emit(args, server_svc.server_image(stored),
                  f"added server {stored.name} ({stored.kind})")

    @verb("server", "set", _set, edits=True)
    def server_set(self, args: argparse.Namespace) -> None:
        stored = self.call(server_svc.set_server_field(self.ctx(), args.name, args.field,
                                                       args.value, self.seen.servers))
        self.seen.servers[stored.name] = stored.row_version
        self.emit(args, server_svc.server_image(stored),
                  f"{stored.name}: {args.field} set (row version {stored.row_version})")

    @verb("server", "remove", _remove, edits=True, aliases=("rm",))
    def server_remove(self, args: argparse.Namespace) -> None:
        self.call(server_svc.remove_server(self.ctx(), args.name))
        self.emit(args, {"removed": args.name}, f"removed server {args.name}")

    @verb("server", "trust", _trust, edits=True)
    def server_trust(self, args: argparse.Namespace) -> None:
        expect = args.fingerprint
        if expect is None and not args.yes:
            expect = self.call(server_svc.host_key(self.ctx(), args.name))
            if not confirm(self.shell, f"{args.name} presents {expect}; trust it?", False,
                           "--yes or --fingerprint SHA256:..."):
                self.emit(args, {"server": args.name, "trusted": False}, "not trusted")
                return
        fingerprint = self.call(server_svc.trust_server(self.ctx(), args.name, expect))
        self.emit(args, {"server": args.name, "fingerprint": fingerprint, "trusted": True},
                  f"trusted {args.name}: {fingerprint}")
