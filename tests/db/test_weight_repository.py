"""Weight revisions on SQLite and the real PostgreSQL: the training run a revision came
from, the base revision as an optimistic lock, and removal."""

from __future__ import annotations

from uuid import uuid4

import pytest

from mer.domain import ModelConfig, Server
from mer.errors import ConflictError


async def _model(uow_factory) -> ModelConfig:  # noqa: ANN001
    async with uow_factory() as uow:
        await uow.servers.add(Server(name="local"))
        model = await uow.models.add(ModelConfig(name="m", server="local", command=["true"]))
        await uow.weights.append(model.id, "w", [1.0, 2.0], author="a")
        await uow.commit()
    return model


async def test_a_revision_keeps_the_run_it_came_from(uow_factory) -> None:  # noqa: ANN001
    model = await _model(uow_factory)
    run_id = uuid4()
    async with uow_factory() as uow:
        stored = await uow.weights.append(model.id, "w", [3.0], author="a", run_id=run_id, base=1)
        await uow.commit()
    assert stored.revision == 2 and stored.run_id == run_id
    async with uow_factory() as uow:
        assert (await uow.weights.get(model.id, "w")).run_id == run_id
        assert [(h.revision, h.run_id) for h in await uow.weights.history(model.id, "w")] == [
            (1, None), (2, run_id)]
        assert [w.run_id for w in await uow.weights.latest(model.id)] == [run_id]


async def test_two_edits_from_the_same_base_cannot_both_append(uow_factory) -> None:  # noqa: ANN001
    model = await _model(uow_factory)
    first, second = uow_factory(), uow_factory()
    async with first:
        await first.weights.append(model.id, "w", [5.0], author="a", base=1)
        await first.commit()
    async with second:  # it read revision 1 too: appending 3 would hide the first edit
        with pytest.raises(ConflictError, match="got a new revision from someone else"):
            await second.weights.append(model.id, "w", [6.0], author="b", base=1)
    async with uow_factory() as uow:
        assert [h.revision for h in await uow.weights.history(model.id, "w")] == [1, 2]
        # Without a base (the catalog loader) it appends after the newest.
        assert (await uow.weights.append(model.id, "w", [7.0], author="c")).revision == 3


async def test_remove_deletes_every_revision_unless_one_was_added(uow_factory) -> None:  # noqa: ANN001
    model = await _model(uow_factory)
    async with uow_factory() as uow:
        await uow.weights.append(model.id, "v", [1.0], author="a")
        await uow.weights.append(model.id, "w", [9.0], author="a")
        await uow.commit()
    async with uow_factory() as uow:
        with pytest.raises(ConflictError):
            await uow.weights.remove(model.id, "w", 1)  # it has 2 now
    async with uow_factory() as uow:
        await uow.weights.remove(model.id, "w", 2)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.weights.names(model.id) == ["v"]
        assert await uow.weights.history(model.id, "w") == []
