"""Service use cases against in-memory fakes: policy, audit, conflicts, the access log."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from mer.domain import ModelConfig, RunKind, RunResult, RunStatus, Server, encode_request
from mer.errors import (
    AlreadyExists,
    ConflictError,
    EditNotAllowed,
    ExecutionError,
    ModelNotFound,
    UsageError,
    WeightNotFound,
)
from mer.services import models as model_svc
from mer.services import runs as run_svc
from mer.services import servers as server_svc
from mer.services import weights as weight_svc
from mer.services.context import ServiceContext, UowRunLog
from tests.fakes import FakeExecutor, FakeModels, FakeRegistry, FakeStore, FakeUnitOfWork


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def executor() -> FakeExecutor:
    return FakeExecutor()


def _ctx(store: FakeStore, executor: FakeExecutor, allow_edit: bool = True) -> ServiceContext:
    return ServiceContext(uow=lambda: FakeUnitOfWork(store), executors=FakeRegistry(executor),
                          allow_edit=allow_edit, actor="tester")


@pytest.fixture
async def ctx(store: FakeStore, executor: FakeExecutor) -> ServiceContext:
    c = _ctx(store, executor)
    await server_svc.add_server(c, Server(name="local"))
    await model_svc.add_model(c, ModelConfig(name="lin", server="local", command=["python3", "lin.py"]))
    await weight_svc.set_weights(c, "lin", "w", [1.0, 2.0])
    await model_svc.set_param(c, "lin", "bias", "0.5")
    return c


async def test_every_edit_is_refused_without_allow_edit(ctx: ServiceContext, store: FakeStore,
                                                        executor: FakeExecutor) -> None:
    ro = _ctx(store, executor, allow_edit=False)
    before = json.dumps([len(store.models), len(store.weights), len(store.audit)])
    edits = [
        model_svc.add_model(ro, ModelConfig(name="x", server="local", command=["x"])),
        model_svc.remove_model(ro, "lin"),
        model_svc.set_model_enabled(ro, "lin", False),
        model_svc.set_model_field(ro, "lin", "timeout", "3"),
        model_svc.set_param(ro, "lin", "k", "1"),
        model_svc.unset_param(ro, "lin", "bias"),
        weight_svc.set_weights(ro, "lin", "w", [3.0]),
        weight_svc.set_weight_element(ro, "lin", "w", 0, 9.0),
        weight_svc.rollback_weights(ro, "lin", "w", 1),
        server_svc.add_server(ro, Server(name="s2")),
        server_svc.remove_server(ro, "local"),
        server_svc.trust_server(ro, "local"),
    ]
    for edit in edits:
        with pytest.raises(EditNotAllowed, match="start mer with --allow-edit"):
            await edit
    assert json.dumps([len(store.models), len(store.weights), len(store.audit)]) == before


async def test_edits_are_audited_with_before_and_after(ctx: ServiceContext, store: FakeStore) -> None:
    await model_svc.set_model_field(ctx, "lin", "timeout", "7.5")
    entry = store.audit[-1]
    assert entry.action == "model.set.timeout" and entry.actor == "tester"
    assert entry.before["timeout"] is None and entry.after["timeout"] == 7.5
    assert {a.action for a in store.audit} >= {"server.add", "model.add", "weights.set", "param.set"}


async def test_stale_shown_version_is_a_conflict(ctx: ServiceContext) -> None:
    seen = {"lin@1": 1}
    await model_svc.set_model_field(ctx, "lin", "description", "someone else")
    with pytest.raises(ConflictError, match="you saw version 1, it is now 2"):
        await model_svc.set_model_field(ctx, "lin", "timeout", "3", seen)


async def test_stale_parameters_and_weights_are_conflicts(ctx: ServiceContext) -> None:
    params = await model_svc.set_param(ctx, "lin", "bias", "1", expect=1)
    assert params.row_version == 2
    with pytest.raises(ConflictError, match="you saw version 1, it is now 2"):
        await model_svc.unset_param(ctx, "lin", "bias", expect=1)
    await weight_svc.set_weights(ctx, "lin", "w", [3.0, 4.0], expect=1)
    for stale in (weight_svc.set_weights(ctx, "lin", "w", [5.0], expect=1),
                  weight_svc.set_weight_element(ctx, "lin", "w", 0, 5.0, expect=1),
                  weight_svc.rollback_weights(ctx, "lin", "w", 1, expect=1)):
        with pytest.raises(ConflictError, match="you saw revision 1, it is now 2"):
            await stale
    with pytest.raises(ConflictError, match="you saw revision 0, it is now 2"):
        await weight_svc.set_weights(ctx, "lin", "w", [5.0], expect=0)


@pytest.mark.parametrize(("field", "value", "needle"), [
    ("name", "x", "cannot be set"), ("timeout", "soon", "not a number"),
    ("mode", "forever", "mode 'forever'"), ("env", "[1]", "JSON object"),
    ("command", "'unclosed", "command"), ("enabled", "maybe", "not true or false"),
])
async def test_bad_field_values(ctx: ServiceContext, field: str, value: str, needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        await model_svc.set_model_field(ctx, "lin", field, value)


async def test_duplicate_model_and_missing_model(ctx: ServiceContext) -> None:
    with pytest.raises(AlreadyExists):
        await model_svc.add_model(ctx, ModelConfig(name="lin", server="local", command=["x"]))
    with pytest.raises(ModelNotFound, match="model 'nope' not found; see `models`"):
        await model_svc.show_model(ctx, "nope")


async def test_params_json_values(ctx: ServiceContext) -> None:
    values = (await model_svc.set_param(ctx, "lin", "layers", "[64, 32]")).values
    assert values["layers"] == [64, 32] and values["bias"] == 0.5
    values = (await model_svc.set_param(ctx, "lin", "name", "plain text")).values
    assert values["name"] == "plain text"
    assert "bias" not in (await model_svc.unset_param(ctx, "lin", "bias")).values
    with pytest.raises(UsageError, match="no parameter"):
        await model_svc.unset_param(ctx, "lin", "bias")


async def test_weights_set_element_history_rollback(ctx: ServiceContext) -> None:
    r2 = (await weight_svc.set_weight_element(ctx, "lin", "w", 1, 5.0)).current
    assert r2.revision == 2 and r2.values.tolist() == [1.0, 5.0]
    with pytest.raises(UsageError, match="outside"):
        await weight_svc.set_weight_element(ctx, "lin", "w", 7, 1.0)
    r3 = (await weight_svc.rollback_weights(ctx, "lin", "w", 1)).current
    assert r3.revision == 3 and r3.values.tolist() == [1.0, 2.0] and "rollback" in r3.note
    assert [h.revision for h in await weight_svc.weight_history(ctx, "lin", "w")] == [1, 2, 3]
    with pytest.raises(WeightNotFound):
        await weight_svc.rollback_weights(ctx, "lin", "w", 99)


def test_parse_values_names_the_bad_element() -> None:
    # Files: tests/services/test_weight_files.py
    assert weight_svc.parse_values("0.1, 2;3,") == [0.1, 2.0, 3.0]
    with pytest.raises(UsageError, match="value 1 'x' is not a number"):
        weight_svc.parse_values("1,x")


async def test_run_builds_the_request_and_logs_start_and_finish(
    ctx: ServiceContext, store: FakeStore, executor: FakeExecutor
) -> None:
    record, result = await run_svc.run_model(ctx, "lin", input={"x": [1, 2]}, params={"bias": 2})
    sent = json.loads(encode_request(executor.requests[-1].payload))  # what the model reads
    assert sent["weights"] == {"w": [1.0, 2.0]} and sent["parameters"] == {"bias": 2}
    assert sent["input"] == {"x": [1, 2]} and sent["run_id"] == str(record.id)
    assert (sent["model"], sent["version"]) == ("lin", "1")
    stored = store.runs[record.id]
    assert stored.status is RunStatus.SUCCEEDED and stored.weight_revisions == {"w": 1}
    assert stored.finished_at is not None and stored.result == {"ok": True}


class _SteadyCatalog(UowRunLog):
    """A run log whose catalog generation moves only when the test says so."""

    generation = 0

    async def catalog_generation(self) -> int:
        return self.generation

    async def start(self, record) -> int:  # noqa: ANN001
        await super().start(record)
        return self.generation


async def test_runs_read_the_catalog_again_only_when_its_generation_moves(
    store: FakeStore, executor: FakeExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[str] = []
    real = FakeModels.get_run_target

    async def counted(self, name, version=None):  # noqa: ANN001, ANN202
        reads.append(name)
        return await real(self, name, version)

    monkeypatch.setattr(FakeModels, "get_run_target", counted)
    log = _SteadyCatalog(lambda: FakeUnitOfWork(store))
    c = ServiceContext(uow=lambda: FakeUnitOfWork(store), executors=FakeRegistry(executor),
                       allow_edit=True, actor="tester", run_log=log)
    await server_svc.add_server(c, Server(name="local"))
    await server_svc.add_server(c, Server(name="other"))
    await model_svc.add_model(c, ModelConfig(name="lin", server="local", command=["v1"]))
    for _ in range(3):
        record, _ = await run_svc.run_model(c, "lin")
        assert store.runs[record.id].status is RunStatus.SUCCEEDED  # still logged every time
    assert reads == ["lin"] and [r.command for r in executor.requests] == [["v1"]] * 3

    await model_svc.set_model_field(c, "lin", "command", "v2")  # stale cache: same generation
    await run_svc.run_model(c, "lin")
    assert executor.requests[-1].command == ["v1"] and reads == ["lin"]
    log.generation += 1  # what the triggers do on a real database
    record, _ = await run_svc.run_model(c, "lin")
    assert executor.requests[-1].command == ["v2"] and reads == ["lin", "lin"]
    assert store.runs[record.id].status is RunStatus.SUCCEEDED and len(store.runs) == 5
    await run_svc.run_model(c, "lin")
    assert reads == ["lin", "lin"]  # cached again

    await model_svc.set_model_enabled(c, "lin", False)
    log.generation += 1
    with pytest.raises(UsageError, match="disabled"):
        await run_svc.run_model(c, "lin")  # found out by the insert: the row says why
    failed = list(store.runs.values())[-1]
    assert failed.status is RunStatus.FAILED and "disabled" in failed.error
    await model_svc.set_model_enabled(c, "lin", True)
    log.generation += 1
    await run_svc.run_model(c, "lin")  # the cached plan said disabled: read again, runs
    assert executor.requests[-1].command == ["v2"]

    n = len(reads)
    record, _ = await run_svc.run_model(c, "lin", server="other")  # an override reads
    assert record.server == "other" and len(reads) == n + 1
    record, _ = await run_svc.run_model(c, "lin")  # and does not replace the cached plan
    assert record.server == "local" and len(reads) == n + 1


async def test_failed_and_train_runs(ctx: ServiceContext, store: FakeStore, executor: FakeExecutor) -> None:
    executor.result = RunResult(status=RunStatus.FAILED, exit_code=3, error="exit status 3")
    record, _ = await run_svc.run_model(ctx, "lin")
    assert store.runs[record.id].status is RunStatus.FAILED
    with pytest.raises(UsageError, match="no training command"):
        await run_svc.run_model(ctx, "lin", kind=RunKind.TRAIN)


async def test_executor_error_is_recorded_then_raised(ctx: ServiceContext, store: FakeStore,
                                                      executor: FakeExecutor) -> None:
    executor.error = ExecutionError("cannot start lin@1: python3 not found")
    with pytest.raises(ExecutionError):
        await run_svc.run_model(ctx, "lin")
    (record,) = store.runs.values()
    assert record.status is RunStatus.FAILED and "not found" in record.error


async def test_cancelled_run_is_recorded_cancelled(ctx: ServiceContext, store: FakeStore,
                                                   executor: FakeExecutor) -> None:
    executor.hang = True
    task = asyncio.ensure_future(run_svc.run_model(ctx, "lin"))
    while not store.runs:
        await asyncio.sleep(0.01)
    (record,) = store.runs.values()
    assert record.status is RunStatus.RUNNING  # written before the model starts
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (record,) = store.runs.values()
    assert record.status is RunStatus.CANCELLED and record.finished_at is not None


async def test_run_input_and_params_parsing(tmp_path: Path) -> None:
    (tmp_path / "in.json").write_text('{"x": [1]}')
    (tmp_path / "in.txt").write_text("hello")
    assert run_svc.load_input(tmp_path / "in.json") == {"x": [1]}
    assert run_svc.load_input(tmp_path / "in.txt") == "hello"
    with pytest.raises(UsageError, match="not both"):
        run_svc.load_input(tmp_path / "in.txt", "1")
    with pytest.raises(UsageError, match="cannot read --input"):
        run_svc.load_input(tmp_path / "missing.json")
    assert run_svc.parse_param_overrides(["a=1", "b=x", "c=[1]"]) == {"a": 1, "b": "x", "c": [1]}
    with pytest.raises(UsageError, match="KEY=VALUE"):
        run_svc.parse_param_overrides(["novalue"])


def test_the_plan_cache_is_bounded_by_count_and_by_the_bytes_of_weights() -> None:
    from array import array
    from uuid import uuid4

    from mer.domain import JsonText, RunTarget, WeightRevision
    from mer.services.context import RunPlan, RunPlanCache

    def plan(n: int) -> RunPlan:  # n weights: 8 n bytes of values plus their JSON
        model = ModelConfig(name="m", server="local", command=["true"])
        values = array("d", [0.0] * n)
        weights = [WeightRevision(model_id=uuid4(), name="w", revision=1, values=values,
                                  sha256="", author="t")]
        encoded = JsonText(json.dumps({"w": values.tolist()}))
        return RunPlan(RunTarget(model, Server(name="local"), {}), weights, encoded)

    one = plan(1000)  # 8,000 + 7,007 bytes
    cache = RunPlanCache(size=3, max_bytes=2 * one.size + 100)
    cache.put(("a", None), 1, one)
    cache.put(("b", None), 1, plan(1000))
    assert cache.get(("a", None)) is not None  # a is now the most recently used
    cache.put(("c", None), 1, plan(1000))  # over the byte budget: b goes
    assert cache.get(("b", None)) is None and cache.get(("a", None)) and cache.get(("c", None))
    cache.put(("c", None), 2, plan(1000))  # replacing an entry does not count it twice
    assert cache.get(("a", None)) is not None and cache.get(("c", None)).generation == 2
    cache.put(("huge", None), 1, plan(100_000))  # bigger than the budget: not kept
    assert cache.get(("huge", None)) is None and cache.get(("a", None)) is not None

    small = RunPlanCache(size=2)
    for key in "xyz":
        small.put((key, None), 1, plan(1))
    assert [small.get((k, None)) is not None for k in "xyz"] == [False, True, True]
