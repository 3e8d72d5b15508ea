"""Server use cases: list, add, remove, ping (reachable? host key known? latency) and
trust (record an SSH server's host key)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from mer.domain import AuditEntry, Server, ServerCheck
from mer.errors import (
    ConflictError,
    ModelNotFound,
    NotFound,
    ServerNotFound,
    UsageError,
    did_you_mean,
)
from mer.services.context import ServiceContext, require_edit
from mer.services.models import find_model
from mer.validation import validate_server

__all__ = ["add_server", "get_server", "host_key", "list_servers", "ping", "ping_server",
           "set_server_field", "remove_server",
           "server_image", "trust_server", "update_server"]


def server_image(s: Server) -> dict[str, Any]:
    return {
        "id": str(s.id), "name": s.name, "kind": s.kind, "host": s.host, "port": s.port,
        "user": s.user, "identity_file": s.identity_file, "known_hosts": s.known_hosts,
        "max_runs": s.max_runs, "enabled": s.enabled, "engine": s.engine,
        "partition": s.partition, "account": s.account, "slurm_args": s.slurm_args,
    }


async def list_servers(ctx: ServiceContext) -> list[Server]:
    async with ctx.uow() as uow:
        return await uow.servers.list()


async def get_server(ctx: ServiceContext, name: str) -> Server:
    async with ctx.uow() as uow:
        server = await uow.servers.get(name)
        if server is None:
            raise ServerNotFound(name, [s.name for s in await uow.servers.list()])
    return server


async def add_server(ctx: ServiceContext, server: Server) -> Server:
    require_edit(ctx)
    validate_server(server, ctx.executors.kinds())
    async with ctx.uow() as uow:
        stored = await uow.servers.add(server)
        await uow.audit.append(AuditEntry(actor=ctx.actor, action="server.add",
                                          target=f"server {server.name}", after=server_image(stored)))
        await uow.commit()
    return stored


# `server set NAME FIELD VALUE`: the field as users type it -> the Server attribute.
SERVER_FIELDS = {"host": "host", "port": "port", "user": "user", "identity": "identity_file",
                 "known-hosts": "known_hosts", "max-runs": "max_runs", "enabled": "enabled",
                 "engine": "engine", "partition": "partition", "account": "account",
                 "slurm-args": "slurm_args"}
_NONE = ("", "-", "none")


def _server_value(field: str, text: str) -> Any:
    attr = SERVER_FIELDS.get(field)
    if attr is None:
        raise UsageError(f"'{field}' is not a server field; one of {', '.join(SERVER_FIELDS)}")
    if attr in ("port", "max_runs"):
        if attr == "port" and text.lower() in _NONE:
            return None
        try:
            return int(text)
        except ValueError:
            raise UsageError(f"{field} '{text}' is not a whole number") from None
    if attr == "enabled":
        if text.lower() not in ("true", "false", "yes", "no", "1", "0"):
            raise UsageError(f"enabled '{text}' is not true or false")
        return text.lower() in ("true", "yes", "1")
    return None if text.lower() in _NONE else text


async def set_server_field(ctx: ServiceContext, name: str, field: str, text: str,
                           expect: Mapping[str, int] | None = None) -> Server:
    """Change one field of a server, audited. ``expect``: the row versions the caller last
    saw, by server name; a server changed since is refused (ConflictError). The pooled SSH
    connection of the old fields is dropped on the server's next use."""
    require_edit(ctx)
    attr = SERVER_FIELDS.get(field)
    value = _server_value(field, text)
    return await update_server(ctx, name, {str(attr): value}, expect, f"server.set.{attr}")


_UPDATABLE = frozenset(SERVER_FIELDS.values()) | {"kind"}


async def update_server(ctx: ServiceContext, name: str, changes: Mapping[str, Any],
                        expect: Mapping[str, int] | None = None,
                        action: str = "server.update") -> Server:
    """Change several fields (typed values, by Server attribute) in one audited edit, with
    the rules and the conflict check of ``set_server_field``."""
    require_edit(ctx)
    unknown = [f for f in changes if f not in _UPDATABLE]
    if unknown:
        raise UsageError(f"'{unknown[0]}' is not a server field; one of {', '.join(sorted(_UPDATABLE))}")
    async with ctx.uow() as uow:
        server = await uow.servers.get(name)
        if server is None:
            raise ServerNotFound(name, [s.name for s in await uow.servers.list()])
        seen = (expect or {}).get(name)
        if seen is not None and seen != server.row_version:
            raise ConflictError(f"server '{name}' was changed by someone else since you read it; "
                                f"reload with `server show {name}` and retry")
        changed = dataclasses.replace(server, **changes)
        validate_server(changed, ctx.executors.kinds() if "kind" in changes else None)
        stored = await uow.servers.update(changed)
        await uow.audit.append(AuditEntry(actor=ctx.actor, action=action,
                                          target=f"server {name}", before=server_image(server),
                                          after=server_image(stored)))
        await uow.commit()
    return stored


async def remove_server(ctx: ServiceContext, name: str) -> None:
    require_edit(ctx)
    async with ctx.uow() as uow:
        server = await uow.servers.get(name)
        if server is None:
            raise ServerNotFound(name)
        await uow.servers.remove(name)
        await uow.audit.append(AuditEntry(actor=ctx.actor, action="server.remove",
                                          target=f"server {name}", before=server_image(server)))
        await uow.commit()


async def ping_server(ctx: ServiceContext, name: str) -> ServerCheck:
    server = await get_server(ctx, name)
    return await ctx.executors.get(server.kind).check(server)


async def ping(ctx: ServiceContext, name: str) -> ServerCheck:
    """Check a server, or the server of a model: `ping linear` is what people type."""
    async with ctx.uow() as uow:
        server = await uow.servers.get(name)
        if server is None:
            try:
                model = await find_model(uow, name)
            except ModelNotFound:
                known = [s.name for s in await uow.servers.list()]
                known += [m.name for m in await uow.models.list()]
                raise NotFound(f"no server or model named '{name}'{did_you_mean(name, known)}; "
                               "see `servers` and `models`") from None
            server = await uow.servers.get(model.server)
            if server is None:
                raise ServerNotFound(model.server)
    return await ctx.executors.get(server.kind).check(server)


async def host_key(ctx: ServiceContext, name: str) -> str:
    """The fingerprint of the host key the server presents now (to show before trusting)."""
    server = await get_server(ctx, name)
    return await ctx.executors.get(server.kind).host_key(server)


async def trust_server(ctx: ServiceContext, name: str, expect: str | None = None) -> str:
    """Record the server's current host key in its known_hosts file; returns the
    fingerprint. With ``expect``, only a key of that fingerprint is recorded. An edit:
    it changes what mer will connect to."""
    require_edit(ctx)
    server = await get_server(ctx, name)
    fingerprint = await ctx.executors.get(server.kind).trust(server, expect)
    async with ctx.uow() as uow:
        await uow.audit.append(AuditEntry(actor=ctx.actor, action="server.trust",
                                          target=f"server {name}", after={"fingerprint": fingerprint}))
        await uow.commit()
    return fingerprint
