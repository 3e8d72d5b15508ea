"""Pipelines on SQLite and the real PostgreSQL: the repository, and pipeline runs of real
model processes as the access log records them (the pipeline's row, a row per step with
the pipeline's run as parent), read back by `runs show`."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from mer.config import Settings
from mer.domain import Pipeline, PipelineStep, RunRecord, RunStatus
from mer.errors import AlreadyExists, PipelineNotFound
from tests.faults.conftest import seed
from tests.faults.shell_harness import InProcessShell

PY = sys.executable
INC = ("import json, sys; r = json.loads(sys.stdin.readline()); "
       "print(json.dumps({'x': r['input']['x'] + 1, 'seen': r['input']}))")
CRASH = "import sys; sys.stdin.read(); print('boom', file=sys.stderr); sys.exit(3)"


async def test_pipeline_repository_and_a_runs_children(uow_factory) -> None:
    # Maps keep their order (JSONB would sort an object's keys) and their pairs.
    maps = [("result.zz", "input.b"), ("result.a", "input.a"), ("result", "input.all")]
    async with uow_factory() as uow:
        stored = await uow.pipelines.add(Pipeline(name="p", description="d", steps=[
            PipelineStep("m1"), PipelineStep("m2@live", maps)]))
        await uow.commit()
    assert stored.row_version == 1 and stored.created_at is not None
    assert stored.created_at.tzinfo is not None
    async with uow_factory() as uow:
        got = await uow.pipelines.get("p")
        assert got is not None and got.description == "d"
        assert [(s.model, s.maps) for s in got.steps] == [("m1", []), ("m2@live", maps)]
        with pytest.raises(AlreadyExists, match="pipeline 'p' already exists"):
            await uow.pipelines.add(Pipeline(name="p", steps=[PipelineStep("m1")]))
    async with uow_factory() as uow:
        await uow.pipelines.add(Pipeline(name="a", steps=[PipelineStep("m1")]))
        assert [p.name for p in await uow.pipelines.list()] == ["a", "p"]
        await uow.pipelines.remove("p")
        with pytest.raises(PipelineNotFound):
            await uow.pipelines.remove("p")
        await uow.commit()
    async with uow_factory() as uow:
        assert [p.name for p in await uow.pipelines.list()] == ["a"]

    # A run's children are its steps, in the order they started.
    parent = RunRecord(model="pipeline:p", version="1", server="-", os_user="u")
    first = RunRecord(model="m1", version="1", server="local", os_user="u", parent_id=parent.id)
    second = RunRecord(model="m2", version="1", server="local", os_user="u", parent_id=parent.id,
                       started_at=first.started_at + timedelta(seconds=1))
    other = RunRecord(model="m1", version="1", server="local", os_user="u")
    async with uow_factory() as uow:
        for record in (parent, second, first, other):
            await uow.runs.start(record)
        await uow.commit()
    async with uow_factory() as uow:
        assert [r.id for r in await uow.runs.children(parent.id)] == [first.id, second.id]
        assert (await uow.runs.children(parent.id))[0].parent_id == parent.id
        assert await uow.runs.children(other.id) == []


@pytest.fixture
def shell(db_url: str, tmp_path: Path):  # noqa: ANN201
    asyncio.run(seed(db_url, inc=[PY, "-c", INC], crash=[PY, "-c", CRASH]))
    sh = InProcessShell(Settings(database_url=db_url, data_dir=tmp_path, allow_edit=True))
    yield sh
    sh.close()


def _json(done) -> dict:  # noqa: ANN001
    assert done.out.count("\n") == 1, done.out  # one JSON document per command
    return json.loads(done.out)


def test_pipeline_runs_are_recorded_with_their_steps(shell: InProcessShell) -> None:
    assert not shell("pipeline add chain --step inc --step inc --map result.x=input.x "
                     "--step inc").failed
    done = shell("run pipeline:chain --data '{\"x\": 1}' --json")
    assert not done.failed, done.err
    run = _json(done)
    assert (run["model"], run["status"], run["server"]) == ("pipeline:chain", "succeeded", "-")
    assert run["result"] == {"x": 4, "seen": {"x": 3, "seen": {"x": 2}}}  # map: only x went on
    shown = _json(shell(f"runs show {run['id']} --json"))
    assert shown["result"] == run["result"]
    assert [(s["model"], s["status"]) for s in shown["steps"]] == [("inc", "succeeded")] * 3

    assert not shell("pipeline add broken --step inc --step crash --step inc").failed
    done = shell("pipeline run broken --data '{\"x\": 1}' --json")
    assert done.failed and done.exit_code == 1
    run = _json(done)
    assert (run["status"], run["error"], run["exit_code"]) == (
        "failed", "step 2 (crash@1) failed (exit 3)", 3)
    shown = _json(shell(f"runs show {run['id']} --json"))
    assert [(s["model"], s["status"], s["exit_code"]) for s in shown["steps"]] == [
        ("inc", "succeeded", 0), ("crash", "failed", 3)]
    crash = _json(shell(f"runs show {shown['steps'][1]['id']} --json"))
    assert crash["stderr"] == "boom\n"
    # Two step rows and the pipeline's own: the third step never ran.
    rows = json.loads(shell("runs --json --limit 50").out)
    assert sum(r["model"] in ("inc", "crash") for r in rows) == 3 + 2
    assert [r["status"] for r in rows if r["model"].startswith("pipeline:")] == [
        str(RunStatus.FAILED), str(RunStatus.SUCCEEDED)]
