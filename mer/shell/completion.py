"""The completion cache: names that Tab offers, rebuilt in the background and swapped
in whole. Completers read only this cache, so Tab never waits on the database or SSH;
the names come from the services (mer/services/names.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mer.services.names import Names

if TYPE_CHECKING:
    from mer.services.context import ServiceContext

__all__ = ["CompletionCache", "build_cache"]


@dataclass(frozen=True)
class CompletionCache:
    names: Names = field(default_factory=Names)

    @property
    def servers(self) -> tuple[str, ...]:
        return self.names.servers

    def models(self, typed: str) -> tuple[str, ...]:
        """Each model once; its versions (name@version) once the word has an ``@``."""
        return self.names.refs if "@" in typed else self.names.models

    def versions(self, name: str | None) -> tuple[str, ...]:
        """A model's versions and aliases (what may follow ``name@``)."""
        head = f"{(name or '').partition('@')[0]}@"
        return tuple(r[len(head):] for r in self.names.refs if r.startswith(head)) if name else ()

    def aliases(self, ref: str | None) -> tuple[str, ...]:
        return self._of_model(self.names.aliases, ref)

    def params(self, ref: str | None) -> tuple[str, ...]:
        return self._of_model(self.names.params, ref)

    def weights(self, ref: str | None) -> tuple[str, ...]:
        return self._of_model(self.names.weights, ref)

    @property
    def fields(self) -> tuple[str, ...]:
        from mer.services.models import EDITABLE_FIELDS  # the services load on first use

        return EDITABLE_FIELDS

    @staticmethod
    def _of_model(table: dict[str, tuple[str, ...]], ref: str | None) -> tuple[str, ...]:
        return table.get(ref.partition("@")[0], ()) if ref else ()


async def build_cache(ctx: ServiceContext) -> CompletionCache:
    from mer.services.names import completion_names

    return CompletionCache(await completion_names(ctx))
