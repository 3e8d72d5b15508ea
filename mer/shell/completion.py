"""The completion cache: names that Tab offers, rebuilt in the background and swapped
in whole. Completers read only this cache, so Tab never waits on the database or SSH."""

from __future__ import annotations

from dataclasses import dataclass, field

from mer.services.context import ServiceContext
from mer.services.models import EDITABLE_FIELDS

__all__ = ["CompletionCache", "build_cache"]


@dataclass(frozen=True)
class CompletionCache:
    models: tuple[str, ...] = ()  # names and name@version
    servers: tuple[str, ...] = ()
    params: dict[str, tuple[str, ...]] = field(default_factory=dict)  # by model name
    weights: dict[str, tuple[str, ...]] = field(default_factory=dict)
    fields: tuple[str, ...] = EDITABLE_FIELDS

    def for_model(self, table: dict[str, tuple[str, ...]], ref: str | None) -> tuple[str, ...]:
        if not ref:
            return ()
        return table.get(ref.partition("@")[0], ())


async def build_cache(ctx: ServiceContext) -> CompletionCache:
    async with ctx.uow() as uow:
        models = await uow.models.list()
        servers = await uow.servers.list()
        params: dict[str, set[str]] = {}
        weights: dict[str, set[str]] = {}
        for m in models:
            params.setdefault(m.name, set()).update((await uow.parameters.get(m.id)).values)
            weights.setdefault(m.name, set()).update(await uow.weights.names(m.id))
    names = sorted({m.name for m in models} | {m.ref for m in models})
    return CompletionCache(
        models=tuple(names),
        servers=tuple(s.name for s in servers),
        params={k: tuple(sorted(v)) for k, v in params.items()},
        weights={k: tuple(sorted(v)) for k, v in weights.items()},
    )
