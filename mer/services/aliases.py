"""Aliases of model versions: ``model alias m live 3`` points ``m@live`` at ``m@3``, a
stable name for "the version in production" that an admin moves as versions come.

Resolving ``m@live`` is not done here: the model repository's lookup resolves a version
part that is no version of the model as an alias (mer/db/interfaces.py, ModelRepository
.get), so every command that takes a model reference takes an alias, and a run's cached
plan follows a moved alias through the catalog generation (the alias table's triggers
bump it). Here: the rules for alias names, and setting, moving, removing, listing.

An alias name starts with a letter, so it never looks like a version number (``3``,
``2.1``), and it may not be the name of one of the model's versions.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

from mer.db.interfaces import UnitOfWork
from mer.domain import AuditEntry, ModelAlias
from mer.errors import NotFound, UsageError
from mer.services.context import ServiceContext, require_edit
from mer.services.models import find_model

__all__ = ["AliasChange", "aliases_by_ref", "check_alias_name", "list_aliases", "remove_alias",
           "set_alias"]

ALIAS_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,49}\Z")


@dataclass(frozen=True, slots=True)
class AliasChange:
    """What ``set_alias`` did: the alias as stored and the version it pointed at before
    (None: a new alias); ``unchanged`` when it already pointed there (nothing stored)."""

    alias: ModelAlias
    before: str | None
    unchanged: bool = False


def check_alias_name(alias: str) -> None:
    """Raises UsageError unless ``alias`` can name an alias."""
    if not ALIAS_NAME.match(alias):
        raise UsageError(f"alias '{alias}' must start with a letter (so it never looks like "
                         "a version) and hold only letters, digits, '_', '.' and '-' "
                         "(at most 50)")


def _check_model_name(name: str) -> None:
    if "@" in name:
        raise UsageError(f"give the model's name without @VERSION: "
                         f"`model alias {name.partition('@')[0]} ALIAS VERSION`")


async def _audit(ctx: ServiceContext, uow: UnitOfWork, action: str, ref: str,
                 before: str | None, after: str | None) -> None:
    await uow.audit.append(AuditEntry(
        actor=ctx.actor, action=action, target=f"model {ref}",
        before=None if before is None else {"version": before},
        after=None if after is None else {"version": after}))


async def set_alias(ctx: ServiceContext, name: str, alias: str, version: str) -> AliasChange:
    """Point ``name@alias`` at version ``version`` of model ``name`` (itself a version or
    an alias: ``model alias m prod live`` copies where live points), in one audited
    transaction. Raises EditNotAllowed, UsageError (a bad alias name, one that is a
    version of the model), ModelNotFound (no such version)."""
    require_edit(ctx)
    _check_model_name(name)
    check_alias_name(alias)
    async with ctx.uow() as uow:
        target = await find_model(uow, f"{name}@{version}")
        same = await uow.models.get(name, alias)
        if same is not None and same.version == alias:
            raise UsageError(f"'{alias}' is a version of '{name}' ({same.ref}); an alias needs "
                             "a name of its own")
        before = await uow.aliases.get(name, alias)
        if before is not None and before.version == target.version:
            return AliasChange(before, before.version, unchanged=True)
        stored = await uow.aliases.set(ModelAlias(name, alias, target.version))
        await _audit(ctx, uow, "alias.move" if before else "alias.set", stored.ref,
                     before.version if before else None, stored.version)
        await uow.commit()
    return AliasChange(stored, before.version if before else None)


async def remove_alias(ctx: ServiceContext, name: str, alias: str) -> ModelAlias:
    """Remove ``name@alias`` (the version it named stays), audited. Raises
    EditNotAllowed, NotFound."""
    require_edit(ctx)
    _check_model_name(name)
    async with ctx.uow() as uow:
        found = await uow.aliases.get(name, alias)
        if found is None:
            raise NotFound(f"model '{name}' has no alias '{alias}'; see `model show {name}`")
        await uow.aliases.remove(name, alias)
        await _audit(ctx, uow, "alias.remove", found.ref, found.version, None)
        await uow.commit()
    return found


async def list_aliases(ctx: ServiceContext, name: str | None = None) -> list[ModelAlias]:
    """Every alias (or ``name``'s), by model name then alias."""
    async with ctx.uow() as uow:
        return await uow.aliases.list(name)


async def aliases_by_ref(ctx: ServiceContext) -> dict[str, list[str]]:
    """The aliases of each version that has some: ``{"m@3": ["live", "prod"]}``."""
    out: dict[str, list[str]] = defaultdict(list)
    for a in await list_aliases(ctx):
        out[a.target].append(a.alias)
    return dict(out)
