"""The repository suite, run on SQLite and on the real PostgreSQL (db_url fixture)."""

from __future__ import annotations

import dataclasses
import math
from array import array
from datetime import timedelta

import pytest

from mer.domain import (
    AuditEntry,
    ModelConfig,
    ModelParameters,
    RunKind,
    RunRecord,
    RunStatus,
    Server,
    utcnow,
)
from mer.errors import AlreadyExists, ConflictError, ServerNotFound, UsageError


async def _seed(uow_factory, server: str = "local", model: str = "echo") -> ModelConfig:
    async with uow_factory() as uow:
        if await uow.servers.get(server) is None:
            await uow.servers.add(Server(name=server))
        stored = await uow.models.add(ModelConfig(name=model, server=server, command=["echo", "hi"],
                                                  env={"A": "1"}, timeout=2.5))
        await uow.commit()
    return stored


async def test_servers_crud(uow_factory) -> None:
    async with uow_factory() as uow:
        added = await uow.servers.add(Server(name="gpu1", kind="ssh", host="10.0.0.1", port=2222,
                                             user="mer", identity_file="~/.ssh/id_ed25519"))
        await uow.commit()
    assert added.row_version == 1 and added.created_at.tzinfo is not None
    async with uow_factory() as uow:
        got = await uow.servers.get("gpu1")
        assert got is not None and (got.host, got.port, got.user) == ("10.0.0.1", 2222, "mer")
        got.max_runs = 2
        updated = await uow.servers.update(got)
        await uow.commit()
    assert updated.row_version == 2 and updated.max_runs == 2
    async with uow_factory() as uow:
        assert [s.name for s in await uow.servers.list()] == ["gpu1"]
        with pytest.raises(AlreadyExists):
            await uow.servers.add(Server(name="gpu1"))
    async with uow_factory() as uow:
        await uow.servers.remove("gpu1")
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.servers.get("gpu1") is None
        with pytest.raises(ServerNotFound):
            await uow.servers.remove("gpu1")


async def test_models_crud_and_versions(uow_factory) -> None:
    stored = await _seed(uow_factory)
    assert stored.command == ["echo", "hi"] and stored.env == {"A": "1"} and stored.timeout == 2.5
    async with uow_factory() as uow:
        for v in ("2", "10"):
            await uow.models.add(dataclasses.replace(stored, version=v, id=ModelConfig(
                name="x", server="local", command=["x"]).id))
        await uow.commit()
    async with uow_factory() as uow:
        newest = await uow.models.get("echo")
        assert newest is not None and newest.version == "10"  # natural order, not text
        assert (await uow.models.get("echo", "2")).version == "2"
        assert [m.version for m in await uow.models.list()] == ["1", "2", "10"]
        assert await uow.models.list(server="nowhere") == []
        with pytest.raises(AlreadyExists):
            await uow.models.add(dataclasses.replace(stored))
    async with uow_factory() as uow:
        with pytest.raises(ServerNotFound):
            await uow.models.add(ModelConfig(name="y", server="nowhere", command=["y"]))


async def test_model_remove_takes_parameters_and_weights_but_keeps_runs(uow_factory) -> None:
    model = await _seed(uow_factory)
    async with uow_factory() as uow:
        await uow.parameters.set(ModelParameters(model.id, {"a": 1}, 0))
        await uow.weights.append(model.id, "w", [1.0, 2.0], author="t")
        await uow.runs.start(RunRecord(model="echo", version="1", server="local", os_user="t",
                                       model_id=model.id))
        await uow.commit()
    async with uow_factory() as uow:
        await uow.models.remove(model.id)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.models.get("echo") is None
        assert await uow.weights.latest(model.id) == []
        assert (await uow.parameters.get(model.id)).values == {}
        assert len(await uow.runs.query()) == 1


async def test_parameters_document_round_trip(uow_factory) -> None:
    model = await _seed(uow_factory)
    doc = {"bias": 0.5, "layers": [64, 32], "name": "ünï", "nested": {"on": True, "x": None}}
    async with uow_factory() as uow:
        empty = await uow.parameters.get(model.id)
        assert empty.values == {} and empty.row_version == 0
        stored = await uow.parameters.set(ModelParameters(model.id, doc, 0))
        await uow.commit()
    assert stored.row_version == 1
    async with uow_factory() as uow:
        got = await uow.parameters.get(model.id)
    assert got.values == doc and got.row_version == 1


async def test_weight_revisions_are_immutable_and_exact(uow_factory) -> None:
    model = await _seed(uow_factory)
    values = [0.1, -2.5, 1e-300, 3.141592653589793, 0.0]
    async with uow_factory() as uow:
        r1 = await uow.weights.append(model.id, "w", values, author="alice", note="first")
        r2 = await uow.weights.append(model.id, "w", [1.0], author="bob")
        await uow.weights.append(model.id, "b", [7.0, 8.0], author="bob")
        await uow.commit()
    assert (r1.revision, r2.revision) == (1, 2)
    async with uow_factory() as uow:
        latest = {w.name: w for w in await uow.weights.latest(model.id)}
        assert latest["w"].revision == 2 and latest["w"].values.tolist() == [1.0]
        assert latest["b"].values.tolist() == [7.0, 8.0]
        first = await uow.weights.get(model.id, "w", 1)
        assert first.values.tolist() == values and first.note == "first"
        assert first.sha256 == r1.sha256 and first.length == 5
        history = await uow.weights.history(model.id, "w")
        assert [(h.revision, h.length, len(h.values)) for h in history] == [(1, 5, 0), (2, 1, 0)]
        assert await uow.weights.names(model.id) == ["b", "w"]
        assert await uow.weights.get(model.id, "w", 9) is None


@pytest.mark.parametrize("bad", [[1.0, math.nan], [math.inf], [1.0, "x"], [True]])
async def test_bad_weights_are_refused_and_nothing_is_written(uow_factory, bad) -> None:
    model = await _seed(uow_factory)
    async with uow_factory() as uow:
        with pytest.raises(UsageError, match="element"):
            await uow.weights.append(model.id, "w", bad, author="t")
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.weights.latest(model.id) == []


async def test_large_vector_round_trip(uow_factory) -> None:
    model = await _seed(uow_factory)
    vec = array("d", (i * 0.5 for i in range(1_000_000)))
    async with uow_factory() as uow:
        await uow.weights.append(model.id, "big", vec, author="t")
        await uow.commit()
    async with uow_factory() as uow:
        got = await uow.weights.get(model.id, "big")
    assert got.length == 1_000_000 and got.values == vec


async def test_access_log_start_finish_and_query(uow_factory) -> None:
    now = utcnow()
    records = []
    async with uow_factory() as uow:
        for i, status in enumerate([RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED]):
            r = RunRecord(model="m" if i < 2 else "n", version="1", server="local", os_user="t",
                          started_at=now - timedelta(minutes=10 - i), kind=RunKind.RUN,
                          weight_revisions={"w": 3})
            await uow.runs.start(r)
            records.append((r, status))
        await uow.commit()
    async with uow_factory() as uow:
        running = await uow.runs.query(status=RunStatus.RUNNING)
        assert len(running) == 3
        for r, status in records:
            r.status, r.exit_code, r.finished_at = status, 0, now
            r.stdout, r.stderr, r.result, r.bytes_in, r.bytes_out = "out\x00ü", "err", {"y": 1}, 3, 9
            await uow.runs.finish(r)
        await uow.commit()
    async with uow_factory() as uow:
        newest_first = await uow.runs.query()
        assert [r.id for r in newest_first] == [r.id for r, _ in reversed(records)]
        assert [r.status for r in await uow.runs.query(model="m")] == [RunStatus.FAILED,
                                                                       RunStatus.SUCCEEDED]
        assert len(await uow.runs.query(since=now - timedelta(minutes=8, seconds=30))) == 1
        assert len(await uow.runs.query(limit=2)) == 2
        one = await uow.runs.get(records[0][0].id)
        assert one.weight_revisions == {"w": 3} and one.result == {"y": 1}
        assert one.stdout == "out\ufffdü"  # NUL kept visible, storable on PostgreSQL
        assert one.duration_ms == pytest.approx(10 * 60 * 1000, rel=1e-3)
        prefix = await uow.runs.get(str(records[1][0].id)[:8])
        assert prefix is not None and prefix.id == records[1][0].id
        with pytest.raises(UsageError):
            await uow.runs.get("zz")


async def test_audit_append_and_query(uow_factory) -> None:
    async with uow_factory() as uow:
        await uow.audit.append(AuditEntry(actor="a", action="model.update", target="model x@1",
                                          before={"timeout": 1}, after={"timeout": 2}))
        await uow.audit.append(AuditEntry(actor="b", action="server.add", target="server s"))
        await uow.commit()
    async with uow_factory() as uow:
        rows = await uow.audit.query(target="model x@1")
        assert [(r.actor, r.before, r.after) for r in rows] == [("a", {"timeout": 1}, {"timeout": 2})]
        assert len(await uow.audit.query()) == 2


async def test_uncommitted_work_is_rolled_back(uow_factory) -> None:
    async with uow_factory() as uow:
        await uow.servers.add(Server(name="ghost"))
    async with uow_factory() as uow:
        assert await uow.servers.get("ghost") is None


async def test_concurrent_model_updates_second_gets_conflict(uow_factory) -> None:
    await _seed(uow_factory)
    async with uow_factory() as a, uow_factory() as b:
        seen_a = await a.models.get("echo")
        seen_b = await b.models.get("echo")
        seen_a.description = "from a"
        await a.models.update(seen_a)
        await a.commit()
        seen_b.description = "from b"
        with pytest.raises(ConflictError, match="changed by someone else"):
            await b.models.update(seen_b)
    async with uow_factory() as uow:
        final = await uow.models.get("echo")
    assert final.description == "from a" and final.row_version == 2


async def test_concurrent_server_and_parameter_updates_conflict(uow_factory) -> None:
    model = await _seed(uow_factory)
    async with uow_factory() as uow:
        await uow.parameters.set(ModelParameters(model.id, {"k": 1}, 0))
        await uow.commit()
    async with uow_factory() as a, uow_factory() as b:
        sa, sb = await a.servers.get("local"), await b.servers.get("local")
        pa, pb = await a.parameters.get(model.id), await b.parameters.get(model.id)
        sa.max_runs, pa.values = 7, {"k": 2}
        await a.servers.update(sa)
        await a.parameters.set(pa)
        await a.commit()
        sb.max_runs, pb.values = 9, {"k": 3}
        with pytest.raises(ConflictError):
            await b.servers.update(sb)
        with pytest.raises(ConflictError):
            await b.parameters.set(pb)
    async with uow_factory() as uow:
        assert (await uow.servers.get("local")).max_runs == 7
        assert (await uow.parameters.get(model.id)).values == {"k": 2}


async def test_run_target_reads_model_server_and_parameters_together(uow_factory) -> None:
    model = await _seed(uow_factory)
    async with uow_factory() as uow:
        bare = await uow.models.get_run_target("echo")
        assert bare.model.id == model.id and bare.server.name == "local" and bare.parameters == {}
        await uow.parameters.set(ModelParameters(model.id, {"bias": 2}, 0))
        await uow.models.add(dataclasses.replace(model, version="2", id=ModelConfig(
            name="x", server="local", command=["x"]).id))
        await uow.commit()
    async with uow_factory() as uow:
        assert (await uow.models.get_run_target("echo", "1")).parameters == {"bias": 2}
        newest = await uow.models.get_run_target("echo")
        assert newest.model.version == "2" and newest.parameters == {}
        assert await uow.models.get_run_target("echo", "9") is None


async def test_audit_query_by_subject_time_and_user(uow_factory) -> None:
    from mer.services.audit import subject_patterns

    old = utcnow() - timedelta(hours=3)
    async with uow_factory() as uow:
        for actor, target, at in (("ann", "model lin@1", old), ("bob", "weights lin@2/w", utcnow()),
                                  ("ann", "model linear@1", utcnow()), ("bob", "server lin", utcnow()),
                                  ("ann", "model l_n@1", utcnow())):
            await uow.audit.append(AuditEntry(actor=actor, action="x", target=target, at=at))
        await uow.commit()
    async with uow_factory() as uow:
        about = await uow.audit.query(targets_like=subject_patterns("lin"))
        assert sorted(e.target for e in about) == ["model lin@1", "server lin", "weights lin@2/w"]
        assert [e.target for e in await uow.audit.query(targets_like=subject_patterns("lin@2"))] == [
            "weights lin@2/w"]
        # `_` is a literal underscore, not LIKE's any-character
        assert [e.target for e in await uow.audit.query(targets_like=subject_patterns("l_n"))] == [
            "model l_n@1"]
        recent = await uow.audit.query(since=utcnow() - timedelta(hours=1), actor="ann")
        assert sorted(e.target for e in recent) == ["model l_n@1", "model linear@1"]
