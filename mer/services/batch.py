"""Batch runs and sweeps: one model run many times, fanned out on the one event loop.

A batch is planned whole before anything runs (every input line parsed, every sweep
value read, every server checked), so a bad line is one error and nothing runs. Then
each item goes through the one run path (``runs.run_model``): its own access-log row,
owned and journaled like any run, marked with the batch's id. At most ``parallel`` run
at once, and no server runs more than its ``max_runs``; with several servers each run
goes to the least busy one (in turn when they are equally busy). Cancelling the batch
(Ctrl-C) cancels every run in flight, each recorded cancelled by run_model, and starts
no more; ``stop_on_error`` starts no more after the first run that did not succeed.

Imports: the services below it (runs), domain and errors; never the shell.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import os
import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID, uuid4

from mer.domain import RunKind, RunStatus
from mer.errors import MerError, NotFound, UsageError
from mer.services import runs as run_svc
from mer.services.context import ServiceContext
from mer.services.models import parse_param_value
from mer.validation import check_params

__all__ = ["MAX_ITEMS", "SKIPPED", "BatchEvents", "BatchItem", "BatchOutcome", "BatchReport",
           "check_out_path", "find_batch", "parse_servers", "parse_sweeps", "plan_items",
           "read_inputs", "run_batch"]

MAX_ITEMS = 100_000  # a sweep's product grows fast: a typo must not start a million runs
SKIPPED = "skipped"  # an item the batch never started (Ctrl-C, --stop-on-error)


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One run of a batch: its place in the input order, its input and sweep parameters,
    and what its result line shows of them (``input`` and/or ``params``)."""

    index: int
    input: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    shown: dict[str, Any] = field(default_factory=dict)


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


# -- planning: everything is read and checked before the first run ----------------------


def read_inputs(path: Path) -> list[Any]:
    """Each non-blank line of a JSON Lines file is one run's input. UsageError naming
    ``FILE:LINE`` for a line that is not JSON."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"cannot read --batch {path}: {getattr(err, 'strerror', None) or err}") from err
    inputs = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            inputs.append(json.loads(line))
        except ValueError as err:
            raise UsageError(f"{path}:{number}: not JSON ({getattr(err, 'msg', err)}); each line "
                             "of --batch is one run's input as JSON") from None
        check_params(inputs[-1], f"{path}:{number}")
    if not inputs:
        raise UsageError(f"--batch {path} holds no input lines")
    return inputs


def parse_sweeps(specs: Sequence[str] | None) -> dict[str, list[Any]]:
    """``--sweep KEY=V1,V2`` options: each key's values (JSON when they parse)."""
    sweeps: dict[str, list[Any]] = {}
    for spec in specs or ():
        key, sep, values = spec.partition("=")
        words = values.split(",")
        if not sep or not key or not all(w.strip() for w in words):
            raise UsageError(f"--sweep '{spec}' is not KEY=V1,V2,...")
        if key in sweeps:
            raise UsageError(f"--sweep names '{key}' twice; give all its values in one: {key}=V1,V2")
        sweeps[key] = [parse_param_value(w) for w in words]
        check_params({key: sweeps[key]}, "--sweep")
    return sweeps


def plan_items(*, inputs: list[Any] | None = None, sweeps: dict[str, list[Any]] | None = None,
               input: Any = None) -> list[BatchItem]:
    """One item per input line (else the one ``input``) for each combination of the
    sweeps' values (the cartesian product), in that order."""
    sweeps = sweeps or {}
    size = (len(inputs) if inputs is not None else 1) * math.prod(len(v) for v in sweeps.values())
    if size > MAX_ITEMS:
        raise UsageError(f"the batch would start {size} runs, more than {MAX_ITEMS}; split it")
    combos = [dict(zip(sweeps, values, strict=True)) for values in itertools.product(*sweeps.values())]
    items: list[BatchItem] = []
    for value in (inputs if inputs is not None else [input]):
        for params in combos:
            shown = {"input": value} if inputs is not None else {}
            if sweeps:
                shown["params"] = params
            items.append(BatchItem(len(items), value, params, shown))
    return items


def parse_servers(text: str | None) -> list[str] | None:
    """``--servers a,b,c``: the names, each once, in order."""
    if text is None:
        return None
    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise UsageError(f"--servers '{text}' is not a comma-separated list of server names")
    return list(dict.fromkeys(names))


def check_out_path(path: Path | None) -> Path | None:
    """Refuse an --out that cannot be written, before anything runs."""
    if path is None:
        return None
    parent = path.parent
    if path.is_dir():
        raise UsageError(f"--out {path} is a directory; give a file name")
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise UsageError(f"--out {path}: cannot write in {parent}")
    return path


async def find_batch(ctx: ServiceContext, text: str) -> UUID:
    """A batch's id from its full id or a unique prefix (at least 4 hex digits)."""
    prefix = text.strip().lower().replace("-", "")
    if len(prefix) < 4 or len(prefix) > 32 or not re.fullmatch(r"[0-9a-f]+", prefix):
        raise UsageError(f"batch id '{text}' is not a batch id; give at least 4 hex characters of one")
    async with ctx.uow() as uow:
        found = await uow.runs.batch_ids(prefix)
    if not found:
        raise NotFound(f"no batch '{text}' in the access log")
    if len(found) > 1:
        raise UsageError(f"batch id '{text}' matches several batches; give more characters")
    return found[0]


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
