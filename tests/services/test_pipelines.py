"""Pipelines as services, on the in-memory fakes: defining them (rules, audit, the edit
gate) and running them (results passed along, maps, the first step that does not succeed
stops the pipeline, Ctrl-C)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from mer.domain import ModelConfig, RunRequest, RunResult, RunStatus, Server, utcnow
from mer.errors import AlreadyExists, EditNotAllowed, ModelNotFound, PipelineNotFound, UsageError
from mer.services import models as model_svc
from mer.services import pipelines as pipe_svc
from mer.services import servers as server_svc
from mer.services.context import ServiceContext
from mer.services.pipeline_runs import pipeline_steps, run_pipeline, step_input
from tests.fakes import FakeExecutor, FakeRegistry, FakeStore, FakeUnitOfWork

Behaviour = Callable[[Any], RunResult]


def _ok(result: Any) -> RunResult:
    return RunResult(status=RunStatus.SUCCEEDED, exit_code=0, result=result)


class ModelsByName(FakeExecutor):
    """Each model answers by its own function of its input; a model named in ``hang``
    runs until cancelled."""

    def __init__(self, behaviours: dict[str, Behaviour]) -> None:
        super().__init__()
        self.behaviours = behaviours
        self.hang_on: set[str] = set()
        self.started = asyncio.Event()

    async def run(self, request: RunRequest, server, sinks=None):  # type: ignore[no-untyped-def]
        self.requests.append(request)
        if request.model in self.hang_on:
            self.started.set()
            await asyncio.sleep(3600)
        result = self.behaviours[request.model](request.payload["input"])
        return dataclasses.replace(result, started_at=utcnow(), finished_at=utcnow())


BEHAVIOURS: dict[str, Behaviour] = {
    "inc": lambda given: _ok({"x": given["x"] + 1}),
    "double": lambda given: _ok({"x": given["x"] * 2, "note": "doubled"}),
    "crash": lambda given: RunResult(status=RunStatus.FAILED, exit_code=3, error="exit status 3"),
    "stuck": lambda given: RunResult(status=RunStatus.TIMEOUT, error="timed out after 1 s"),
}


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def executor() -> ModelsByName:
    return ModelsByName(BEHAVIOURS)


def _ctx(store: FakeStore, executor: FakeExecutor, allow_edit: bool = True) -> ServiceContext:
    return ServiceContext(uow=lambda: FakeUnitOfWork(store), executors=FakeRegistry(executor),
                          allow_edit=allow_edit, actor="tester")


@pytest.fixture
async def ctx(store: FakeStore, executor: ModelsByName) -> ServiceContext:
    c = _ctx(store, executor)
    await server_svc.add_server(c, Server(name="local"))
    for name in BEHAVIOURS:
        await model_svc.add_model(c, ModelConfig(name=name, server="local", command=[name]))
    return c


async def _define(ctx: ServiceContext, name: str, *parts: tuple[str, str]) -> None:
    await pipe_svc.add_pipeline(ctx, name, pipe_svc.build_steps(parts))


def S(ref: str) -> tuple[str, str]:
    return ("step", ref)


def M(text: str) -> tuple[str, str]:
    return ("map", text)


# -- defining ---------------------------------------------------------------------------

def test_each_map_belongs_to_the_step_before_it() -> None:
    steps = pipe_svc.build_steps([S("a"), S("b@live"), M("result.y=input.x"), M("result=input.all"),
                                  S("c@2")])
    assert [(s.model, s.maps) for s in steps] == [
        ("a", []), ("b@live", [("result.y", "input.x"), ("result", "input.all")]), ("c@2", [])]


@pytest.mark.parametrize(("parts", "message"), [
    ([M("result.y=input.x"), S("a")], "comes before any --step"),
    ([S("a"), M("result.y=input.x")], "follows the first --step"),
    ([S("a"), S("b"), M("y=x")], "is not result.PATH=input.PATH"),
    ([S("a"), S("b"), M("result..y=input.x")], "is not result.PATH=input.PATH"),
    ([S("a"), S("b"), M("result.y=input.x"), M("result.z=input.x")], "input.x of step 2 is already mapped"),
    ([S("a b")], "is not a model reference"),
    ([S("a@")], "is not a model reference"),
    ([], "needs at least one --step"),
])
def test_bad_steps_are_one_line_naming_what_is_wrong(parts: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        pipe_svc.build_steps(parts)
    assert "\n" not in str(caught.value)


async def test_add_show_list_remove_are_audited(ctx: ServiceContext, store: FakeStore) -> None:
    await _define(ctx, "chain", S("inc"), S("double@1"), M("result.x=input.x"))
    found = await pipe_svc.get_pipeline(ctx, "chain")
    assert [(s.model, s.maps) for s in found.steps] == [("inc", []), ("double@1", [("result.x", "input.x")])]
    assert [p.name for p in await pipe_svc.list_pipelines(ctx)] == ["chain"]
    await pipe_svc.remove_pipeline(ctx, "chain")
    assert await pipe_svc.list_pipelines(ctx) == []
    added, removed = store.audit[-2:]
    assert (added.action, added.target, added.actor) == ("pipeline.add", "pipeline chain", "tester")
    assert added.after["steps"][1] == {"model": "double@1", "map": [["result.x", "input.x"]]}
    assert (removed.action, removed.before["name"], removed.after) == ("pipeline.remove", "chain", None)
    with pytest.raises(PipelineNotFound, match="pipeline 'chain' not found; see `pipelines`"):
        await pipe_svc.get_pipeline(ctx, "chain")


async def test_edits_are_refused_without_allow_edit(ctx: ServiceContext, store: FakeStore,
                                                    executor: ModelsByName) -> None:
    await _define(ctx, "chain", S("inc"))
    audited = len(store.audit)
    ro = _ctx(store, executor, allow_edit=False)
    with pytest.raises(EditNotAllowed):
        await pipe_svc.add_pipeline(ro, "other", pipe_svc.build_steps([S("inc")]))
    with pytest.raises(EditNotAllowed):
        await pipe_svc.remove_pipeline(ro, "chain")
    assert list(store.pipelines) == ["chain"] and len(store.audit) == audited


async def test_a_step_must_name_a_model_and_a_name_is_taken_once(ctx: ServiceContext,
                                                                 store: FakeStore) -> None:
    with pytest.raises(ModelNotFound, match="model 'dobule' not found .did you mean 'double'"):
        await _define(ctx, "chain", S("inc"), S("dobule@live"))
    with pytest.raises(UsageError, match="pipeline name 'a:b' must be"):
        await _define(ctx, "a:b", S("inc"))
    await _define(ctx, "chain", S("inc@live"))  # an alias is resolved when the step runs
    with pytest.raises(AlreadyExists, match="pipeline 'chain' already exists"):
        await _define(ctx, "chain", S("double"))
    assert [s.model for s in store.pipelines["chain"].steps] == ["inc@live"]


def test_a_map_takes_parts_of_the_previous_result() -> None:
    result = {"y": {"z": [10, 20]}, "n": 1}
    assert step_input(result, [], 2) is result
    assert step_input(result, [("result.y.z.1", "input.a.b"), ("result.n", "input.n")], 2) == {
        "a": {"b": 20}, "n": 1}
    assert step_input(result, [("result", "input")], 2) == result
    with pytest.raises(UsageError, match="--map result.q=input.x: the result of step 1 has no result.q"):
        step_input(result, [("result.q", "input.x")], 2)


# -- running ----------------------------------------------------------------------------

async def test_each_steps_result_is_the_next_steps_input(ctx: ServiceContext, store: FakeStore,
                                                         executor: ModelsByName) -> None:
    await _define(ctx, "chain", S("inc"), S("double"), S("inc"))
    record, steps = await run_pipeline(ctx, "chain", input={"x": 1})
    assert [r.payload["input"] for r in executor.requests] == [{"x": 1}, {"x": 2},
                                                               {"x": 4, "note": "doubled"}]
    assert (record.status, record.result) == (RunStatus.SUCCEEDED, {"x": 5})
    assert (record.model, record.version, record.server) == ("pipeline:chain", "1", "-")
    row = store.runs[record.id]
    assert (row.status, row.result, row.parent_id) == (RunStatus.SUCCEEDED, {"x": 5}, None)
    assert [s.id for s in await pipeline_steps(ctx, row)] == [s.id for s in steps]
    assert all(store.runs[s.id].parent_id == record.id for s in steps)
    assert {r.timeout for r in executor.requests} == {None}  # each model's own timeout
    await run_pipeline(ctx, "chain", input={"x": 1}, timeout=7)
    assert [r.timeout for r in executor.requests[3:]] == [7, 7, 7]  # --timeout: each step's


async def test_a_map_builds_the_next_input(ctx: ServiceContext, executor: ModelsByName) -> None:
    await _define(ctx, "mapped", S("double"), S("inc"), M("result.x=input.x"))
    record, _ = await run_pipeline(ctx, "mapped", input={"x": 3})
    assert executor.requests[1].payload["input"] == {"x": 6}  # without the note
    assert record.result == {"x": 7}


async def test_a_failed_middle_step_stops_the_pipeline(ctx: ServiceContext, store: FakeStore,
                                                       executor: ModelsByName) -> None:
    await _define(ctx, "broken", S("inc"), S("crash"), S("double"))
    record, steps = await run_pipeline(ctx, "broken", input={"x": 1})
    assert [r.model for r in executor.requests] == ["inc", "crash"]  # double never ran
    assert (record.status, record.exit_code) == (RunStatus.FAILED, 3)
    assert record.error == "step 2 (crash@1) failed (exit 3)"
    rows = sorted(store.runs.values(), key=lambda r: r.started_at)
    assert [(r.model, r.status) for r in rows] == [
        ("pipeline:broken", RunStatus.FAILED), ("inc", RunStatus.SUCCEEDED),
        ("crash", RunStatus.FAILED)]
    assert [s.status for s in steps] == [RunStatus.SUCCEEDED, RunStatus.FAILED]


async def test_a_timed_out_step_ends_the_pipeline_timed_out(ctx: ServiceContext,
                                                            executor: ModelsByName) -> None:
    await _define(ctx, "slow", S("stuck"), S("inc"))
    record, steps = await run_pipeline(ctx, "slow", input={"x": 1})
    assert (record.status, record.error) == (RunStatus.TIMEOUT, "step 1 (stuck@1) timeout")
    assert len(steps) == 1 and [r.model for r in executor.requests] == ["stuck"]


async def test_a_step_that_cannot_start_fails_the_pipeline(ctx: ServiceContext, store: FakeStore,
                                                           executor: ModelsByName) -> None:
    await _define(ctx, "chain", S("inc"), S("double"), M("result.missing=input.x"))
    await _define(ctx, "gone", S("inc"), S("double"))
    record, steps = await run_pipeline(ctx, "chain", input={"x": 1})
    assert record.status is RunStatus.FAILED and len(steps) == 1
    assert record.error == ("step 2 (double) failed: --map result.missing=input.x: the result "
                            "of step 1 has no result.missing")
    await model_svc.remove_model(ctx, "double")  # after the pipeline was defined
    record, _ = await run_pipeline(ctx, "gone", input={"x": 1})
    assert record.error is not None and record.error.startswith(
        "step 2 (double) failed: model 'double' not found")
    assert store.runs[record.id].status is RunStatus.FAILED


async def test_cancelling_cancels_the_running_step_and_the_pipeline(
        ctx: ServiceContext, store: FakeStore, executor: ModelsByName) -> None:
    await _define(ctx, "chain", S("inc"), S("double"), S("inc"))
    executor.hang_on.add("double")
    task = asyncio.ensure_future(run_pipeline(ctx, "chain", input={"x": 1}))
    await executor.started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    by_model = {r.model: r for r in store.runs.values()}
    assert by_model["double"].status is RunStatus.CANCELLED
    assert by_model["pipeline:chain"].status is RunStatus.CANCELLED
    assert by_model["pipeline:chain"].error == "step 2 (double) cancelled by the user"
    assert len(store.runs) == 3  # the pipeline, inc, double: the last inc never started


async def test_an_unknown_pipeline_runs_nothing(ctx: ServiceContext, store: FakeStore) -> None:
    await _define(ctx, "chain", S("inc"))
    with pytest.raises(PipelineNotFound, match="did you mean 'chain'"):
        await run_pipeline(ctx, "chian")
    assert store.runs == {}


async def test_a_pipeline_run_whose_mer_is_gone_is_reaped_lost(ctx: ServiceContext,
                                                               store: FakeStore) -> None:
    from mer.domain import RunRecord
    from mer.services.ownership import this_owner
    from mer.services.reaping import reap_lost_runs

    owner = this_owner()  # this host and pid, but another start time: a mer long gone
    orphan = RunRecord(model="pipeline:chain", version="1", server="-", os_user="x",
                       owner_host=owner.host, owner_pid=owner.pid, owner_start="0:0")
    await ctx.run_log.start(orphan)
    assert [r.id for r in await reap_lost_runs(ctx)] == [orphan.id]
    row = store.runs[orphan.id]
    assert row.status is RunStatus.LOST
    assert row.error is not None and row.error.endswith("a pipeline has no process of its own "
                                                        "(its steps are runs of their own)")
