"""Batch runs and sweeps: one model run many times, fanned out on the one event loop.

A batch is planned whole before anything runs (every input line parsed, every sweep
value read, every server checked), so a bad line is one error and nothing runs. Then
each item goes through the one run path (``runs.run_model``): its own access-log row,
owned and journaled like any run, marked with the batch's id. At most ``parallel`` run
at once, and no server runs more than its ``max_runs``; with several servers each run
goes to the least busy one (in turn when they are equally busy). Cancelling the batch
(Ctrl-C) cancels every run in flight, each recorded cancelled by run_model, and starts
no more; ``stop_on_error`` starts no more after the first run that did not succeed.

Planning (input lines, sweeps, servers, the results file) is in batch_plan.py, whose
names this module exports too. Imports: the services below it (runs), domain and
errors; never the shell.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID, uuid4

from mer.domain import RunKind, RunStatus
from mer.errors import MerError, UsageError
from mer.services import runs as run_svc
from mer.services.batch_plan import (
    MAX_ITEMS,
    BatchItem,
    check_out_path,
    find_batch,
    parse_servers,
    parse_sweeps,
    plan_items,
    read_inputs,
)
from mer.services.context import ServiceContext

__all__ = ["MAX_ITEMS", "SKIPPED", "BatchEvents", "BatchItem", "BatchOutcome", "BatchReport",
           "check_out_path", "find_batch", "parse_servers", "parse_sweeps", "plan_items",
           "read_inputs", "run_batch"]

SKIPPED = "skipped"  # an item the batch never started (Ctrl-C, --stop-on-error)


@dataclass(slots=True)
class BatchOutcome:
    item: BatchItem
    status: str  # a RunStatus value, or SKIPPED
    run_id: UUID | None = None
    server: str | None = None
    duration_ms: float | None = None
    result: Any = None
    error: str | None = None
    batch_id: UUID | None = None

    @property
    def ok(self) -> bool:
        return self.status == RunStatus.SUCCEEDED

    def image(self) -> dict[str, Any]:
        """Its line of the results (--out) and of --json."""
        image: dict[str, Any] = {
            "index": self.item.index, "run_id": None if self.run_id is None else str(self.run_id),
            "batch_id": None if self.batch_id is None else str(self.batch_id),
            "status": self.status, "server": self.server,
            "duration_ms": None if self.duration_ms is None else round(self.duration_ms, 3),
        }
        if self.ok:
            image["result"] = self.result
        else:
            image["error"] = self.error
        return {**image, **self.item.shown}


@dataclass(slots=True)
class BatchReport:
    batch_id: UUID
    model: str  # name@version, as it ran
    outcomes: list[BatchOutcome]  # in input order
    seconds: float
    stopped: bool = False  # --stop-on-error stopped it

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)


class BatchEvents(Protocol):
    """What a batch tells as it goes (a progress bar, JSON lines); called on the loop."""

    def started(self, item: BatchItem) -> None: ...
    def finished(self, outcome: BatchOutcome) -> None: ...


# -- running --------------------------------------------------------------------------


class _Servers:
    """Where the next run goes: the least busy server (by its share of max_runs) that
    has a free slot, in turn among equals; waits while every one is full. ``None``
    stands for the model's own server (its plan is the one cached for plain runs)."""

    def __init__(self, capacity: dict[str | None, int]) -> None:
        self._capacity = {name: max(cap, 1) for name, cap in capacity.items()}
        self._busy = dict.fromkeys(capacity, 0)
        self._order = list(capacity)
        self._turn = 0
        self._freed = asyncio.Event()

    @property
    def total(self) -> int:
        return sum(self._capacity.values())

    async def take(self) -> str | None:
        """A server with a free slot, now taken. One caller at a time (the launcher)."""
        while True:
            rotated = self._order[self._turn:] + self._order[:self._turn]
            free = [s for s in rotated if self._busy[s] < self._capacity[s]]
            if free:
                best = min(free, key=lambda s: self._busy[s] / self._capacity[s])
                self._busy[best] += 1
                self._turn = (self._order.index(best) + 1) % len(self._order)
                return best
            self._freed.clear()
            await self._freed.wait()

    def give(self, name: str | None) -> None:
        """Not a coroutine: a cancelled run gives its slot back in its finally."""
        self._busy[name] -= 1
        self._freed.set()


async def _capacity(ctx: ServiceContext, ref: str, kind: RunKind,
                    servers: list[str] | None) -> tuple[str, str, dict[str | None, int]]:
    """The model as it runs, its own server's name and each server's max_runs, checked
    as a run checks them."""
    plan = await run_svc.read_run_plan(ctx, ref, kind=kind)
    own = plan.target.server
    if not servers:
        return plan.target.model.ref, own.name, {None: own.max_runs}
    capacity: dict[str | None, int] = {}
    for name in servers:
        plan = await run_svc.read_run_plan(ctx, ref, kind=kind, server=name)
        capacity[name] = plan.target.server.max_runs
    return plan.target.model.ref, own.name, capacity


async def run_batch(
    ctx: ServiceContext,
    ref: str,
    items: list[BatchItem],
    *,
    parallel: int | None = None,
    servers: list[str] | None = None,
    params: dict[str, Any] | None = None,
    timeout: float | None = None,
    input_files: dict[str, str] | None = None,
    stop_on_error: bool = False,
    events: BatchEvents | None = None,
    out: Path | None = None,
) -> BatchReport:
    """Run ``items`` of model ``ref``, at most ``parallel`` at once (default: as many as
    the servers' max_runs allow), on the model's server or spread over ``servers``.
    ``params`` go to every run under each item's own. Writes ``out`` (JSON Lines, input
    order) whatever the ending, cancellation included. Raises MerError before anything
    runs when the batch cannot run at all (model or server not found, disabled)."""
    if parallel is not None and parallel < 1:
        raise UsageError("--parallel must be at least 1")
    if timeout is not None and timeout <= 0:
        raise UsageError("--timeout must be a positive number of seconds")
    clash = sorted(set(params or {}) & {k for i in items[:1] for k in i.params})
    if clash:
        raise UsageError(f"--param and --sweep both set {', '.join(clash)}; keep one")
    model, own, capacity = await _capacity(ctx, ref, RunKind.RUN, servers)
    pool = _Servers(capacity)
    limit = asyncio.Semaphore(parallel or pool.total)
    batch_id = uuid4()
    outcomes: list[BatchOutcome | None] = [None] * len(items)
    running: set[asyncio.Task[None]] = set()
    stop = asyncio.Event()
    begun = time.monotonic()

    async def one(item: BatchItem, server: str | None) -> None:
        run_id = uuid4()
        outcome = BatchOutcome(item, str(RunStatus.CANCELLED), run_id, server or own,
                               error="cancelled by the user")
        try:
            record, _ = await run_svc.run_model(
                ctx, ref, input=item.input, params={**(params or {}), **item.params},
                server=server, timeout=timeout, input_files=input_files, batch_id=batch_id,
                run_id=run_id)
            outcome = BatchOutcome(item, str(record.status), run_id, record.server,
                                   record.duration_ms, record.result, record.error)
        except MerError as err:  # the model could not run at all; its row says so
            outcome = BatchOutcome(item, str(RunStatus.FAILED), run_id, server or own, error=str(err))
        finally:
            outcome.batch_id = batch_id
            outcomes[item.index] = outcome
            limit.release()
            pool.give(server)
            if not outcome.ok and stop_on_error:
                stop.set()
            if events is not None:
                events.finished(outcome)

    try:
        for item in items:
            await limit.acquire()
            if stop.is_set():
                limit.release()
                break
            server = await pool.take()
            if stop.is_set():  # a run failed while this one waited for a server
                pool.give(server)
                limit.release()
                break
            if events is not None:
                events.started(item)
            task = asyncio.create_task(one(item, server))
            running.add(task)
            task.add_done_callback(running.discard)
        while running:
            await asyncio.gather(*running)
    except BaseException:
        # Ctrl-C (or a bug): end what runs, each run recording its own ending.
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        raise
    finally:
        done = [o or BatchOutcome(item, SKIPPED, error="not started", batch_id=batch_id)
                for o, item in zip(outcomes, items, strict=True)]
        if out is not None:
            _write_results(out, done)
    return BatchReport(batch_id, model, done, time.monotonic() - begun, stopped=stop.is_set())


def _write_results(path: Path, outcomes: list[BatchOutcome]) -> None:
    """The results as JSON Lines, in input order; written whole or not at all."""
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for outcome in outcomes:
                fh.write(json.dumps(outcome.image(), ensure_ascii=False, default=str) + "\n")
        os.replace(tmp, path)
    except OSError as err:
        raise MerError(f"writing --out {path} failed: {err.strerror or err}") from err
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
