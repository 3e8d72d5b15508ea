"""The catalog seeds, it does not overwrite: a load adds what is missing and leaves every
admin's edit, disabled model and removed entry as the admin left it (issue 11), on
SQLite and the real PostgreSQL."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import sqlalchemy as sa

from mer.db.catalog import load_catalog
from mer.db.migrate import upgrade
from mer.db.orm import JsonDoc, Timestamp
from mer.domain import AuditEntry
from mer.execution.registry import ExecutorRegistry
from mer.services import models, servers, weights
from mer.services.context import ServiceContext

CATALOG = """
[[servers]]
name = "local"
kind = "local"

[[servers]]
name = "spare"
kind = "local"
max_runs = 2

[[models]]
name = "lin"
server = "local"
command = ["python3", "lin.py"]
timeout = 5
[models.parameters]
bias = 0.5
scale = 2
[models.weights]
w = [1.0, 2.0]

[[models]]
name = "gone"
server = "local"
command = ["python3", "gone.py"]

[[models]]
name = "off"
server = "local"
command = ["python3", "off.py"]
"""


def _admin(uow_factory) -> ServiceContext:
    return ServiceContext(uow=uow_factory, executors=ExecutorRegistry(), allow_edit=True,
                          actor="ann")


async def _state(uow_factory) -> dict:
    async with uow_factory() as uow:
        out: dict = {"servers": {s.name: s.max_runs for s in await uow.servers.list()}}
        for m in await uow.models.list():
            w = await uow.weights.get(m.id, "w")
            out[m.ref] = (m.timeout, m.enabled, (await uow.parameters.get(m.id)).values,
                          (w.revision, list(w.values)) if w else None,
                          sorted(await uow.weights.names(m.id)))
    return out


async def test_a_second_load_leaves_every_admin_edit_as_the_admin_left_it(tmp_path: Path,
                                                                          uow_factory) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(CATALOG)
    first = await load_catalog(path, uow_factory)
    assert first.added == {"servers": 2, "models": 3, "parameters": 2, "weights": 1}
    loaded = datetime.now(UTC)

    ann = _admin(uow_factory)
    await models.set_param(ann, "lin", "bias", "7")
    await models.unset_param(ann, "lin", "scale")
    await models.set_model_field(ann, "lin", "timeout", "60")
    await weights.set_weights(ann, "lin", "w", [9.0, 9.0])
    await models.set_model_enabled(ann, "off", False)
    await models.remove_model(ann, "gone")
    await servers.remove_server(ann, "spare")
    await servers.set_server_field(ann, "local", "max-runs", "9")
    edited = await _state(uow_factory)
    assert edited["lin@1"] == (60.0, True, {"bias": 7}, (2, [9.0, 9.0]), ["w"])

    # A model new to the catalog, on the server the admin removed, is not added either.
    path.write_text(CATALOG + '\n[[models]]\nname = "late"\nserver = "spare"\ncommand = ["true"]\n')
    again = await load_catalog(path, uow_factory)
    assert set(again.added.values()) == {0}
    assert sorted(again.removed) == ["model gone@1", "model late@1 (its server spare)",
                                     "param lin@1/scale", "server spare"]
    assert await _state(uow_factory) == edited
    async with uow_factory() as uow:
        assert not await uow.audit.query(actor=f"catalog:{getpass.getuser()}", since=loaded)


async def test_a_changed_catalog_adds_only_what_is_missing(tmp_path: Path, uow_factory) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(CATALOG)
    await load_catalog(path, uow_factory)
    before = await _state(uow_factory)
    changed = (CATALOG.replace("timeout = 5", "timeout = 9")
               .replace("bias = 0.5", "bias = 1\nfresh = true")
               .replace("w = [1.0, 2.0]", "w = [3.0, 4.0]\nv = [1.0]")
               .replace("max_runs = 2", "max_runs = 3")
               + '\n[[models]]\nname = "new"\nserver = "spare"\ncommand = ["python3", "new.py"]\n')
    path.write_text(changed)
    report = await load_catalog(path, uow_factory)
    assert report.added == {"servers": 0, "models": 1, "parameters": 1, "weights": 1}
    after = await _state(uow_factory)
    assert after["lin@1"] == (5.0, True, {"bias": 0.5, "scale": 2, "fresh": True}, (1, [1.0, 2.0]),
                              ["v", "w"])
    assert after["servers"] == before["servers"] and "new@1" in after
    async with uow_factory() as uow:
        added = await uow.audit.query(target="model lin@1", limit=10)
    assert added[0].action == "param.set" and added[0].after == {"fresh": True}


async def test_the_upgrade_seeds_what_a_database_holds_and_what_its_audit_says_was_removed(
    tmp_path: Path, engine, uow_factory
) -> None:
    """A database from before catalog_seeds: the first load after the upgrade brings back
    neither a model nor a parameter that an admin had removed."""
    from mer.db.migrate import downgrade

    await downgrade(engine, steps=None)
    await upgrade(engine, steps=5)  # 0005: no catalog_seeds yet
    # Rows written as the 0005 schema holds them: today's repositories know later columns.
    now = datetime.now(UTC)
    sid, mid = uuid4(), uuid4()
    typed = {"id": sa.Uuid(), "server_id": sa.Uuid(), "model_id": sa.Uuid(), "command": JsonDoc,
             "env": JsonDoc, "document": JsonDoc, "created_at": Timestamp, "updated_at": Timestamp}

    def table(name: str, *columns: str) -> sa.TableClause:
        return sa.table(name, *(sa.column(c, typed.get(c)) for c in columns))

    servers_t = table("servers", "id", "name", "kind", "max_runs", "enabled", "row_version",
                      "created_at", "updated_at")
    models_t = table("models", "id", "name", "version", "server_id", "command", "mode", "framing",
                     "env", "description", "enabled", "row_version", "created_at", "updated_at")
    params_t = table("model_parameters", "model_id", "document", "row_version", "updated_at")
    async with engine.begin() as conn:
        await conn.execute(sa.insert(servers_t).values(
            id=sid, name="local", kind="local", max_runs=4, enabled=True, row_version=1,
            created_at=now, updated_at=now))
        await conn.execute(sa.insert(models_t).values(
            id=mid, name="lin", version="1", server_id=sid, command=["python3"], mode="oneshot",
            framing="jsonl", env={}, description="", enabled=True, row_version=1,
            created_at=now, updated_at=now))
        await conn.execute(sa.insert(params_t).values(
            model_id=mid, document={"bias": 7}, row_version=1, updated_at=now))
    async with uow_factory() as uow:
        for action, target, before in (("model.remove", "model gone@1", {"name": "gone"}),
                                       ("param.unset", "model lin@1", {"scale": 2}),
                                       ("server.remove", "server spare", {"name": "spare"})):
            await uow.audit.append(AuditEntry(actor="ann", action=action, target=target,
                                              before=before))
        await uow.commit()
    await upgrade(engine)
    async with uow_factory() as uow:
        seeds = await uow.seeds.all()
    assert seeds == {("server", "local"), ("model", "lin@1"), ("param", "lin@1/bias"),
                     ("model", "gone@1"), ("param", "lin@1/scale"), ("server", "spare")}

    path = tmp_path / "catalog.toml"
    path.write_text(CATALOG)
    report = await load_catalog(path, uow_factory)
    assert report.added == {"servers": 0, "models": 1, "parameters": 0, "weights": 1}  # off@1, w
    state = await _state(uow_factory)
    assert "gone@1" not in state and "spare" not in state["servers"]
    assert state["lin@1"][2] == {"bias": 7}
