"""The names a person types: models, servers, and each model's parameter keys and
weight vectors, read in one unit of work. The shell's Tab completion is built from them
(mer/shell/completion.py), so it never reads repositories itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mer.services.context import ServiceContext

__all__ = ["Names", "completion_names"]


@dataclass(frozen=True, slots=True)
class Names:
    models: tuple[str, ...] = ()  # each model name once
    refs: tuple[str, ...] = ()  # every name@version and name@alias
    servers: tuple[str, ...] = ()
    params: dict[str, tuple[str, ...]] = field(default_factory=dict)  # by model name,
    weights: dict[str, tuple[str, ...]] = field(default_factory=dict)  # over its versions
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)  # by model name


async def completion_names(ctx: ServiceContext) -> Names:
    """Every name Tab may offer, sorted. Raises StorageError when the database fails."""
    async with ctx.uow() as uow:
        models = await uow.models.list()
        servers = await uow.servers.list()
        aliases = await uow.aliases.list()
        params: dict[str, set[str]] = {}
        weights: dict[str, set[str]] = {}
        for m in models:
            params.setdefault(m.name, set()).update((await uow.parameters.get(m.id)).values)
            weights.setdefault(m.name, set()).update(await uow.weights.names(m.id))
    of_model: dict[str, list[str]] = {}
    for a in aliases:  # sorted by the repository
        of_model.setdefault(a.name, []).append(a.alias)
    return Names(
        models=tuple(sorted({m.name for m in models})),
        refs=tuple(sorted({m.ref for m in models} | {a.ref for a in aliases})),
        servers=tuple(sorted(s.name for s in servers)),
        params={k: tuple(sorted(v)) for k, v in params.items()},
        weights={k: tuple(sorted(v)) for k, v in weights.items()},
        aliases={k: tuple(v) for k, v in of_model.items()},
    )
