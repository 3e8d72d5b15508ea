"""Aliases in the DAL, on SQLite and the real PostgreSQL: the alias repository, the model
lookup that resolves ``m@ALIAS`` in its one query, a name alone meaning its newest
enabled version, and alias edits moving the catalog generation (what makes a shell's
cached run plan follow a moved alias)."""

from __future__ import annotations

import pytest

from mer.db.run_log import SqlRunLog
from mer.domain import ModelAlias, ModelConfig, Server
from mer.errors import AlreadyExists


async def test_aliases_are_stored_moved_resolved_and_removed(engine, uow_factory) -> None:
    log = SqlRunLog(engine)
    try:
        await _check(uow_factory, log)
    finally:
        await log.close()


async def _check(uow_factory, log: SqlRunLog) -> None:  # noqa: ANN001
    async with uow_factory() as uow:
        await uow.servers.add(Server(name="local"))
        for version, enabled in (("1", True), ("2", True), ("10", False)):
            await uow.models.add(ModelConfig(name="m", version=version, server="local",
                                             command=["true"], enabled=enabled))
        await uow.commit()
    generations = [await log.catalog_generation()]
    async with uow_factory() as uow:
        stored = await uow.aliases.set(ModelAlias("m", "live", "1"))
        await uow.aliases.set(ModelAlias("m", "beta", "2"))
        await uow.commit()
    assert stored.updated_at is not None and stored.updated_at.tzinfo is not None
    generations.append(await log.catalog_generation())
    async with uow_factory() as uow:
        assert [(a.alias, a.version) for a in await uow.aliases.list("m")] == [("beta", "2"),
                                                                              ("live", "1")]
        assert await uow.aliases.list("other") == []
        assert (await uow.models.get("m", "live")).version == "1"
        target = await uow.models.get_run_target("m", "live")
        assert target is not None and target.model.version == "1" and target.server.name == "local"
        assert (await uow.models.get("m", "2")).version == "2"  # a version is a version
        assert await uow.models.get("m", "nope") is None
        assert await uow.models.get("other", "live") is None  # an alias belongs to its model
        # A name alone: the newest enabled version (10 is disabled), in natural order.
        assert (await uow.models.get("m")).version == "2"
        with pytest.raises(AlreadyExists, match="is an alias of m@1"):
            await uow.models.add(ModelConfig(name="m", version="live", server="local",
                                             command=["true"]))
    async with uow_factory() as uow:
        await uow.aliases.set(ModelAlias("m", "live", "2"))  # moved: one row updated
        await uow.commit()
    generations.append(await log.catalog_generation())
    async with uow_factory() as uow:
        assert (await uow.models.get_run_target("m", "live")).model.version == "2"
        assert len(await uow.aliases.list()) == 2
        assert await uow.aliases.remove("m", "live") is True
        assert await uow.aliases.remove("m", "live") is False
        await uow.commit()
    generations.append(await log.catalog_generation())
    assert len(set(generations)) == 4, generations  # every alias edit moved it
    async with uow_factory() as uow:
        assert await uow.aliases.get("m", "live") is None
        assert await uow.models.get("m", "live") is None
        for version in ("1", "2"):
            m = await uow.models.get("m", version)
            m.enabled = False
            await uow.models.update(m)
        await uow.commit()
    async with uow_factory() as uow:
        assert (await uow.models.get("m")).version == "10"  # none enabled: the newest
