"""What this shell last showed of each model, so that an edit made from a stale view
(someone else changed the row meanwhile) is refused instead of silently overwriting."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from uuid import UUID

__all__ = ["SeenRevisions", "SeenViews"]


class SeenRevisions(Mapping[tuple[UUID, str], int]):
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


@dataclass
class SeenViews:
    models: dict[str, int] = field(default_factory=dict)  # model ref -> row version
    params: dict[UUID, int] = field(default_factory=dict)  # model id -> parameters' version
    weights: SeenRevisions = field(default_factory=SeenRevisions)
    servers: dict[str, int] = field(default_factory=dict)  # server name -> row version
