"""Weight edits as use cases: unchanged values, --new/--resize, remove, and storing the
weights a training run returned. Each runs on the in-memory fakes and on the real
repositories (SQLite and PostgreSQL), so the fakes keep in step with them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mer.domain import ModelConfig, RunKind, RunResult, RunStatus, Server
from mer.errors import ConflictError, EditNotAllowed, NeedsConfirmation, UsageError, WeightNotFound
from mer.services import models as model_svc
from mer.services import runs as run_svc
from mer.services import servers as server_svc
from mer.services import weights as weight_svc
from mer.services.context import ServiceContext
from tests.fakes import FakeExecutor, FakeRegistry, FakeStore, FakeUnitOfWork


@pytest.fixture(params=["fake", "sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """"fake", or the URL of an empty database (a sync fixture: pg_url runs its own loop)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'mer.db'}"
    if request.param == "postgres":
        from tests.fixtures_pg import _reset_pg

        url: str = request.getfixturevalue("pg_url")
        asyncio.run(_reset_pg(url))
        return url
    return "fake"


@pytest.fixture
async def uow(store_url: str) -> AsyncIterator[Any]:
    if store_url == "fake":
        store = FakeStore()
        yield lambda: FakeUnitOfWork(store)
        return
    from mer.db.engine import create_engine
    from mer.db.uow import make_uow_factory
    from tests.fixtures_pg import migrate

    await migrate(store_url)
    engine = create_engine(store_url)
    yield make_uow_factory(engine)
    await engine.dispose()


@pytest.fixture
def executor() -> FakeExecutor:
    return FakeExecutor()


@pytest.fixture
async def ctx(uow: Any, executor: FakeExecutor) -> ServiceContext:
    c = ServiceContext(uow=uow, executors=FakeRegistry(executor), allow_edit=True, actor="tester")
    await server_svc.add_server(c, Server(name="local"))
    await model_svc.add_model(c, ModelConfig(name="lin", server="local", command=["lin"],
                                             train_command=["train"]))
    await model_svc.add_model(c, ModelConfig(name="bare", server="local", command=["bare"]))
    await weight_svc.set_weights(c, "lin", "w", [1.0, 2.0, 3.0])
    return c


async def _audit(ctx: ServiceContext) -> list[Any]:
    async with ctx.uow() as uow:
        return await uow.audit.query(limit=1000)


async def _history(ctx: ServiceContext, name: str = "w") -> list[int]:
    return [w.revision for w in await weight_svc.weight_history(ctx, "lin", name)]


# -- values equal to the newest revision ----------------------------------------------

async def test_equal_values_store_no_revision_and_no_audit_row(ctx: ServiceContext) -> None:
    before = len(await _audit(ctx))
    for edit in (weight_svc.set_weights(ctx, "lin", "w", [1, 2, 3.0]),
                 weight_svc.set_weight_element(ctx, "lin", "w", 1, 2.0),
                 weight_svc.rollback_weights(ctx, "lin", "w", 1)):
        change = await edit
        assert not change.changed and change.current.revision == 1
    assert await _history(ctx) == [1] and len(await _audit(ctx)) == before
    change = await weight_svc.set_weights(ctx, "lin", "w", [1.0, 2.0, 4.0])
    assert change.changed and change.current.revision == 2


async def test_a_stale_edit_is_a_conflict_even_when_the_values_are_equal(ctx: ServiceContext) -> None:
    await weight_svc.set_weights(ctx, "lin", "w", [7.0, 8.0, 9.0])
    with pytest.raises(ConflictError, match="you saw revision 1, it is now 2"):
        await weight_svc.set_weights(ctx, "lin", "w", [7.0, 8.0, 9.0], expect=1)


# -- a new vector beside others, a new length -------------------------------------------

async def test_a_new_name_beside_others_needs_new(ctx: ServiceContext) -> None:
    before = len(await _audit(ctx))
    with pytest.raises(NeedsConfirmation) as caught:
        await weight_svc.set_weights(ctx, "lin", "W", [1.0])
    err = caught.value
    assert str(err) == "model 'lin@1' has no weight vector 'W' (it has w); add --new to create it"
    assert err.flag == "--new" and err.exit_code == 2 and err.seen[1:] == ("W", 0)
    assert "create a new weight vector 'W' of lin@1" in err.question
    assert len(await _audit(ctx)) == before
    with pytest.raises(WeightNotFound):
        await weight_svc.weight_history(ctx, "lin", "W")
    assert (await weight_svc.set_weights(ctx, "lin", "W", [1.0], new=True)).current.revision == 1


async def test_the_first_vector_of_a_model_needs_no_flag(ctx: ServiceContext) -> None:
    # NOTE: nothing to mistype it for; scripts that give a model its first vector keep working.
    assert (await weight_svc.set_weights(ctx, "bare", "v", [1.0])).changed


async def test_a_new_length_needs_resize(ctx: ServiceContext) -> None:
    with pytest.raises(NeedsConfirmation) as caught:
        await weight_svc.set_weights(ctx, "lin", "w", [1.0, 2.0])
    assert str(caught.value) == ("weight vector 'w' of model 'lin@1' has 3 values, the new one 2; "
                                 "add --resize to change its length")
    assert caught.value.flag == "--resize"
    assert await _history(ctx) == [1]
    assert (await weight_svc.set_weights(ctx, "lin", "w", [1.0, 2.0], resize=True)).current.length == 2
    # A rollback restores a length the vector had: named by its number, it needs no flag.
    assert (await weight_svc.rollback_weights(ctx, "lin", "w", 1)).current.length == 3


async def test_a_conflict_is_told_before_a_question(ctx: ServiceContext) -> None:
    await weight_svc.set_weights(ctx, "lin", "w", [0.0, 0.0, 0.0])
    with pytest.raises(ConflictError):
        await weight_svc.set_weights(ctx, "lin", "w", [1.0], expect=1)


# -- remove --------------------------------------------------------------------------------

async def test_remove_needs_yes_is_audited_and_conflict_checked(ctx: ServiceContext) -> None:
    await weight_svc.set_weights(ctx, "lin", "w", [4.0, 5.0, 6.0])
    with pytest.raises(NeedsConfirmation, match=r"removing weight vector 'w' of lin@1 \(3 values, "
                                                 r"2 revisions\) needs --yes"):
        await weight_svc.remove_weights(ctx, "lin", "w")
    with pytest.raises(ConflictError, match="you saw revision 1, it is now 2"):
        await weight_svc.remove_weights(ctx, "lin", "w", expect=1, yes=True)
    assert await _history(ctx) == [1, 2]
    gone = await weight_svc.remove_weights(ctx, "lin", "w", expect=2, yes=True)
    assert gone.revision == 2
    assert await weight_svc.show_weights(ctx, "lin") == []
    entry = (await _audit(ctx))[0]
    assert (entry.action, entry.target, entry.after) == ("weights.remove", "weights lin@1/w", None)
    assert entry.before["revision"] == 2 and entry.before["length"] == 3
    with pytest.raises(WeightNotFound):
        await weight_svc.remove_weights(ctx, "lin", "w", yes=True)
    # The name is free again, from revision 1 (nothing beside it: no --new).
    assert (await weight_svc.set_weights(ctx, "lin", "w", [1.0])).current.revision == 1


async def test_remove_without_allow_edit_is_refused(ctx: ServiceContext) -> None:
    ro = ServiceContext(uow=ctx.uow, executors=ctx.executors, allow_edit=False)
    with pytest.raises(EditNotAllowed):
        await weight_svc.remove_weights(ro, "lin", "w", yes=True)
    assert await _history(ctx) == [1]


# -- weights from a training run -----------------------------------------------------------

async def _train(ctx: ServiceContext, executor: FakeExecutor, result: Any,
                 status: RunStatus = RunStatus.SUCCEEDED) -> Any:
    executor.result = RunResult(status=status, exit_code=0 if status is RunStatus.SUCCEEDED else 1,
                                result=result)
    record, _ = await run_svc.run_model(ctx, "lin", kind=RunKind.TRAIN)
    return record


async def test_trained_weights_are_stored_linked_to_the_run(ctx: ServiceContext,
                                                            executor: FakeExecutor) -> None:
    record = await _train(ctx, executor, {"weights": {"w": [1.5, 2.5, 3.5]}, "loss": 0.1})
    assert record.weight_revisions == {"w": 1}
    [change] = await weight_svc.save_trained_weights(ctx, record)
    assert change.changed and change.current.revision == 2 and change.current.run_id == record.id
    history = await weight_svc.weight_history(ctx, "lin", "w")
    assert [(h.revision, h.run_id) for h in history] == [(1, None), (2, record.id)]
    assert history[1].note == f"trained by run {str(record.id)[:8]}"
    entry = (await _audit(ctx))[0]
    assert entry.action == "weights.train" and entry.after["run_id"] == str(record.id)
    shown = (await weight_svc.show_weights(ctx, "lin", "w"))[0]
    assert shown.values.tolist() == [1.5, 2.5, 3.5] and shown.run_id == record.id


async def test_a_vector_changed_while_it_trained_is_a_conflict(ctx: ServiceContext,
                                                               executor: FakeExecutor) -> None:
    record = await _train(ctx, executor, {"weights": {"w": [0.0, 0.0, 1.0]}})
    await weight_svc.set_weights(ctx, "lin", "w", [9.0, 9.0, 9.0])  # someone else, meanwhile
    with pytest.raises(ConflictError, match="you saw revision 1, it is now 2"):
        await weight_svc.save_trained_weights(ctx, record)
    assert await _history(ctx) == [1, 2]


async def test_trained_weights_obey_new_and_resize_all_or_none(ctx: ServiceContext,
                                                               executor: FakeExecutor) -> None:
    record = await _train(ctx, executor, {"weights": {"w": [5.0, 6.0, 7.0], "b": [0.5]}})
    before = len(await _audit(ctx))
    with pytest.raises(NeedsConfirmation, match="'b'.*add --new"):
        await weight_svc.save_trained_weights(ctx, record)
    assert await _history(ctx) == [1] and len(await _audit(ctx)) == before  # w not stored either
    changes = await weight_svc.save_trained_weights(ctx, record, new=True)
    assert [(c.current.name, c.current.revision) for c in changes] == [("b", 1), ("w", 2)]
    resized = await _train(ctx, executor, {"weights": {"w": [1.0]}})
    with pytest.raises(NeedsConfirmation, match="add --resize"):
        await weight_svc.save_trained_weights(ctx, resized)
    [change] = await weight_svc.save_trained_weights(ctx, resized, resize=True)
    assert change.current.length == 1


async def test_trained_weights_equal_to_the_newest_store_nothing(ctx: ServiceContext,
                                                                 executor: FakeExecutor) -> None:
    record = await _train(ctx, executor, {"weights": {"w": [1, 2, 3]}})
    [change] = await weight_svc.save_trained_weights(ctx, record)
    assert not change.changed and change.current.revision == 1 and change.current.run_id is None


@pytest.mark.parametrize(("result", "status", "message"), [
    ({"weights": {"w": [1.0, 2.0, 3.0]}}, RunStatus.FAILED, "failed: its weights are not stored"),
    ({"y": 1}, RunStatus.SUCCEEDED, "returned no weight vectors"),
    ("text", RunStatus.SUCCEEDED, "returned no weight vectors"),
    ({"weights": {"w": "1,2,3"}}, RunStatus.SUCCEEDED, "'w' in the result .* is not a list of numbers"),
    ({"weights": {"w": [1.0, None, 3.0]}}, RunStatus.SUCCEEDED, "element 1 is NoneType"),
    ({"weights": {"w": []}}, RunStatus.SUCCEEDED, "no values given"),
])
async def test_what_cannot_be_stored_is_refused_whole(ctx: ServiceContext, executor: FakeExecutor,
                                                      result: Any, status: RunStatus, message: str) -> None:
    record = await _train(ctx, executor, result, status)
    with pytest.raises(UsageError, match=message):
        await weight_svc.save_trained_weights(ctx, record, new=True, resize=True)
    assert await _history(ctx) == [1]


async def test_saving_trained_weights_needs_allow_edit(ctx: ServiceContext, executor: FakeExecutor) -> None:
    record = await _train(ctx, executor, {"weights": {"w": [3.0, 2.0, 1.0]}})
    ro = ServiceContext(uow=ctx.uow, executors=ctx.executors, allow_edit=False)
    with pytest.raises(EditNotAllowed):
        await weight_svc.save_trained_weights(ro, record)


async def test_a_model_replaced_since_the_run_started_gets_no_weights(ctx: ServiceContext,
                                                                      executor: FakeExecutor) -> None:
    record = await _train(ctx, executor, {"weights": {"w": [3.0, 2.0, 1.0]}})
    await model_svc.remove_model(ctx, "lin")
    await model_svc.add_model(ctx, ModelConfig(name="lin", server="local", command=["lin"]))
    with pytest.raises(ConflictError, match="replaced since run"):
        await weight_svc.save_trained_weights(ctx, record)


async def test_two_saves_at_once_store_one_revision_each_or_conflict(ctx: ServiceContext,
                                                                     executor: FakeExecutor) -> None:
    a = await _train(ctx, executor, {"weights": {"w": [1.0, 1.0, 1.0]}})
    b = await _train(ctx, executor, {"weights": {"w": [2.0, 2.0, 2.0]}})
    done = await asyncio.gather(weight_svc.save_trained_weights(ctx, a),
                                weight_svc.save_trained_weights(ctx, b), return_exceptions=True)
    assert sum(isinstance(d, ConflictError) for d in done) == 1  # both trained from revision 1
    assert await _history(ctx) == [1, 2]
