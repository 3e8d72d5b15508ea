"""Batch runs and sweeps (mer/services/batch.py) on fakes: planning, input order,
--stop-on-error, cancellation, the spread over servers within max-runs."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from mer.domain import ModelConfig, RunResult, RunStatus, Server, utcnow
from mer.errors import NotFound, ServerNotFound, UsageError
from mer.services import batch as batch_svc
from mer.services import models as model_svc
from mer.services import servers as server_svc
from mer.services.context import ServiceContext
from tests.fakes import FakeExecutor, FakeRegistry, FakeStore, FakeUnitOfWork


class GatedExecutor(FakeExecutor):
    """Each run waits until the test opens its gate (by the run's input ``i``), and the
    executor counts how many run at once on each server."""

    def __init__(self) -> None:
        super().__init__()
        self.gates: dict[Any, asyncio.Event] = {}
        self.started: list[Any] = []
        self.finished: list[Any] = []
        self.running: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.servers: Counter[str] = Counter()
        self.failing: set[Any] = set()
        self.auto = False  # open every gate at once

    def gate(self, i: Any) -> asyncio.Event:
        return self.gates.setdefault(i, asyncio.Event())

    async def run(self, request, server, sinks=None):  # type: ignore[no-untyped-def]
        i = request.payload["input"]["i"]
        self.started.append(i)
        self.servers[server.name] += 1
        self.running[server.name] += 1
        self.peak[server.name] = max(self.peak[server.name], self.running[server.name])
        try:
            if not self.auto:
                await self.gate(i).wait()
            else:
                await asyncio.sleep(0.001)
        finally:
            self.running[server.name] -= 1
        self.finished.append(i)
        if i in self.failing:
            return RunResult(status=RunStatus.FAILED, exit_code=3, error="exit status 3",
                             started_at=utcnow(), finished_at=utcnow())
        return RunResult(status=RunStatus.SUCCEEDED, exit_code=0, result={"i": i},
                         started_at=utcnow(), finished_at=utcnow())


@pytest.fixture
async def setup() -> tuple[ServiceContext, FakeStore, GatedExecutor]:
    store, executor = FakeStore(), GatedExecutor()
    ctx = ServiceContext(uow=lambda: FakeUnitOfWork(store), executors=FakeRegistry(executor),
                         allow_edit=True, actor="tester")
    await server_svc.add_server(ctx, Server(name="local", max_runs=8))
    await server_svc.add_server(ctx, Server(name="a", max_runs=1))
    await server_svc.add_server(ctx, Server(name="b", max_runs=2))
    await model_svc.add_model(ctx, ModelConfig(name="m", server="local", command=["m"]))
    await model_svc.set_param(ctx, "m", "bias", "0.5")
    return ctx, store, executor


def _items(n: int) -> list[batch_svc.BatchItem]:
    return batch_svc.plan_items(inputs=[{"i": i} for i in range(n)])


async def _until(check: Any) -> None:
    """Let the loop run until ``check()`` holds (bounded: a hang fails, not a timing)."""
    for _ in range(1000):
        if check():
            return
        await asyncio.sleep(0)
    raise AssertionError("the batch never got there")


def test_a_line_that_is_not_json_names_the_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "in.jsonl"
    f.write_text('{"i": 1}\n\n{"i": 2\n')
    with pytest.raises(UsageError, match=r"in\.jsonl:3: not JSON"):
        batch_svc.read_inputs(f)
    f.write_text("\n \n")
    with pytest.raises(UsageError, match="holds no input lines"):
        batch_svc.read_inputs(f)


def test_sweeps_are_the_cartesian_product() -> None:
    sweeps = batch_svc.parse_sweeps(["lr=0.1,0.01", "depth=2,4,x"])
    items = batch_svc.plan_items(sweeps=sweeps, input={"x": 1})
    assert [i.params for i in items] == [
        {"lr": 0.1, "depth": 2}, {"lr": 0.1, "depth": 4}, {"lr": 0.1, "depth": "x"},
        {"lr": 0.01, "depth": 2}, {"lr": 0.01, "depth": 4}, {"lr": 0.01, "depth": "x"}]
    assert all(i.input == {"x": 1} and "input" not in i.shown for i in items)
    both = batch_svc.plan_items(inputs=[1, 2], sweeps={"k": [True, False]})
    assert [(i.input, i.params["k"]) for i in both] == [(1, True), (1, False), (2, True), (2, False)]
    for bad in (["lr"], ["lr="], ["lr=1,,2"], ["lr=1", "lr=2"]):
        with pytest.raises(UsageError):
            batch_svc.parse_sweeps(bad)
    with pytest.raises(UsageError, match="more than"):
        batch_svc.plan_items(sweeps={f"k{n}": list(range(10)) for n in range(6)}, input=None)


async def test_results_come_in_input_order_though_runs_end_out_of_order(setup, tmp_path: Path) -> None:
    ctx, store, executor = setup
    out = tmp_path / "results.jsonl"
    sweeps = {"lr": [0.1, 0.2]}
    items = batch_svc.plan_items(inputs=[{"i": 0}, {"i": 1}], sweeps=sweeps)
    items = [batch_svc.BatchItem(n, {"i": n}, it.params, it.shown) for n, it in enumerate(items)]
    task = asyncio.ensure_future(batch_svc.run_batch(ctx, "m", items, parallel=4, out=out))
    await _until(lambda: len(executor.started) == 4)
    for i in (3, 2, 1, 0):  # the last input ends first
        executor.gate(i).set()
        await _until(lambda i=i: i in executor.finished)
    report = await task
    assert executor.finished == [3, 2, 1, 0]
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["index"] for line in lines] == [0, 1, 2, 3]
    assert [line["result"] for line in lines] == [{"i": 0}, {"i": 1}, {"i": 2}, {"i": 3}]
    assert [line["params"] for line in lines] == [{"lr": 0.1}, {"lr": 0.2}, {"lr": 0.1}, {"lr": 0.2}]
    assert all(line["status"] == "succeeded" and "error" not in line for line in lines)
    # Each run is its own access-log row, all of one batch, with the model's own
    # parameters under the sweep's.
    rows = {str(r.id): r for r in store.runs.values()}
    assert sorted(rows) == sorted(line["run_id"] for line in lines)
    assert {r.batch_id for r in rows.values()} == {report.batch_id}
    assert lines[0]["batch_id"] == str(report.batch_id)
    params = [r.payload["parameters"] for r in executor.requests]
    assert all(p["bias"] == 0.5 and p["lr"] in (0.1, 0.2) for p in params)


async def test_stop_on_error_starts_no_more_runs(setup, tmp_path: Path) -> None:
    ctx, store, executor = setup
    executor.auto, executor.failing = True, {1}
    out = tmp_path / "o.jsonl"
    report = await batch_svc.run_batch(ctx, "m", _items(5), parallel=1, stop_on_error=True, out=out)
    assert report.stopped and not report.ok
    assert [o.status for o in report.outcomes] == ["succeeded", "failed", "skipped", "skipped", "skipped"]
    assert report.outcomes[1].error == "exit status 3"
    assert len(store.runs) == 2 and executor.started == [0, 1]
    assert [json.loads(line)["status"] for line in out.read_text().splitlines()][2] == "skipped"
    # Without the flag every run is started, failures or not.
    executor.started.clear()
    report = await batch_svc.run_batch(ctx, "m", _items(3), parallel=1)
    assert executor.started == [0, 1, 2] and report.count("failed") == 1 and not report.stopped


async def test_cancelling_a_batch_cancels_its_runs_and_starts_no_more(setup, tmp_path: Path) -> None:
    ctx, store, executor = setup
    out = tmp_path / "o.jsonl"
    task = asyncio.ensure_future(batch_svc.run_batch(ctx, "m", _items(5), parallel=2, out=out))
    await _until(lambda: len(executor.started) == 2)
    task.cancel()  # what Ctrl-C does to the command's task
    with pytest.raises(asyncio.CancelledError):
        await task
    assert executor.started == [0, 1]
    assert sorted(str(r.status) for r in store.runs.values()) == ["cancelled", "cancelled"]
    assert all(r.finished_at is not None for r in store.runs.values())
    statuses = [json.loads(line)["status"] for line in out.read_text().splitlines()]
    assert statuses == ["cancelled", "cancelled", "skipped", "skipped", "skipped"]


async def test_runs_spread_over_servers_within_their_max_runs(setup) -> None:
    ctx, store, executor = setup
    task = asyncio.ensure_future(batch_svc.run_batch(ctx, "m", _items(9), servers=["a", "b"]))
    # a runs 1 at a time, b 2: three at once, the batch's default parallelism.
    await _until(lambda: len(executor.started) == 3)
    assert dict(executor.running) == {"a": 1, "b": 2}
    executor.auto = True
    for gate in list(executor.gates.values()):
        gate.set()
    report = await task
    assert report.ok and dict(executor.peak) == {"a": 1, "b": 2}
    assert executor.servers["a"] + executor.servers["b"] == 9 and executor.servers["a"] >= 2
    assert {r.server for r in store.runs.values()} == {"a", "b"}
    # --parallel bounds it further.
    executor.peak.clear()
    await batch_svc.run_batch(ctx, "m", _items(6), servers=["b"], parallel=1)
    assert dict(executor.peak) == {"b": 1}


async def test_a_batch_that_cannot_run_fails_before_any_run(setup, tmp_path: Path) -> None:
    ctx, store, executor = setup
    with pytest.raises(ServerNotFound, match="'nope'"):
        await batch_svc.run_batch(ctx, "m", _items(2), servers=["a", "nope"])
    with pytest.raises(UsageError, match="--parallel"):
        await batch_svc.run_batch(ctx, "m", _items(2), parallel=0)
    with pytest.raises(UsageError, match="--param and --sweep both set lr"):
        await batch_svc.run_batch(ctx, "m", batch_svc.plan_items(sweeps={"lr": [1]}), params={"lr": 2})
    with pytest.raises(UsageError, match="directory"):
        batch_svc.check_out_path(tmp_path)
    with pytest.raises(UsageError, match="cannot write"):
        batch_svc.check_out_path(tmp_path / "no" / "such.jsonl")
    assert not store.runs and not executor.started


async def test_a_batch_is_found_by_a_prefix_of_its_id(setup) -> None:
    ctx, store, executor = setup
    executor.auto = True
    report = await batch_svc.run_batch(ctx, "m", _items(2))
    assert await batch_svc.find_batch(ctx, report.batch_id.hex[:6]) == report.batch_id
    assert await batch_svc.find_batch(ctx, str(report.batch_id)) == report.batch_id
    with pytest.raises(UsageError, match="not a batch id"):
        await batch_svc.find_batch(ctx, "xyz")
    with pytest.raises(NotFound, match="no batch"):
        await batch_svc.find_batch(ctx, "0000")
