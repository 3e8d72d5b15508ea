"""What every service call needs: a unit-of-work factory, the run log, the executors,
the edit policy and who is acting. Built once by mer/bootstrap.py; tests build one from
fakes."""

from __future__ import annotations

import asyncio
import getpass
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from mer.db.interfaces import RunLog, UnitOfWorkFactory
from mer.domain import JsonText, RunRecord, RunTarget, WeightRevision, WorkerInfo
from mer.errors import EditNotAllowed
from mer.execution.interface import Executor

if TYPE_CHECKING:
    from mer.services.artifacts import ArtifactStore

__all__ = ["CachedPlan", "ExecutorSource", "PlanKey", "RunPlan", "RunPlanCache", "ServiceContext",
           "UowRunLog", "require_edit"]

# (model name, version or None for the newest[, the server it runs on when not its own])
PlanKey = tuple[str | None, ...]


class ExecutorSource(Protocol):
    def get(self, kind: str) -> Executor: ...
    def kinds(self) -> list[str]: ...
    def workers(self) -> list[WorkerInfo]: ...
    async def close(self) -> None: ...


class UowRunLog:
    """A RunLog over any unit of work: each write its own transaction. It knows no
    catalog generation (None), so nothing is cached."""

    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    async def catalog_generation(self) -> int | None:
        return None

    async def start(self, record: RunRecord) -> int | None:
        async with self._uow() as uow:
            await uow.runs.start(record)
            await uow.commit()
        return None

    async def claim(self, record: RunRecord) -> None:
        async with self._uow() as uow:
            await uow.runs.claim(record)
            await uow.commit()

    async def update(self, record: RunRecord) -> None:
        async with self._uow() as uow:
            await uow.runs.finish(record)
            await uow.commit()

    def update_at_once(self, record: RunRecord) -> bool:
        return False

    async def replay(self) -> int:
        return 0

    async def close(self) -> None:
        pass


@dataclass(frozen=True, slots=True)
class RunPlan:
    """What a run reads of the catalog: the model, its server, parameters and the
    newest weight revisions."""

    target: RunTarget
    weights: list[WeightRevision]
    weights_json: JsonText  # the weights as the request carries them, encoded once

    @property
    def size(self) -> int:
        """Bytes that its weights hold, as values and as JSON."""
        return len(self.weights_json) + sum(w.values.itemsize * len(w.values) for w in self.weights)


@dataclass(frozen=True, slots=True)
class CachedPlan:
    generation: int  # the catalog generation read just before the plan
    plan: RunPlan
    # What each kind of run of the plan runs, once checked (mer/services/runs.py).
    commands: dict[str, list[str]] = field(default_factory=dict)


class RunPlanCache:
    """Run plans by (model name, version or None for the newest[, server]), each with the catalog
    generation it was read at. Bounded in count and in the bytes of their weights (a
    million weights hold 28 MB), least recently used out first; a plan bigger than the
    whole budget is used once and not kept."""

    def __init__(self, size: int = 32, max_bytes: int = 256 * 2**20) -> None:
        self._size, self._max_bytes, self._bytes = size, max_bytes, 0
        self._plans: OrderedDict[PlanKey, CachedPlan] = OrderedDict()

    def get(self, key: PlanKey) -> CachedPlan | None:
        found = self._plans.get(key)
        if found is not None:
            self._plans.move_to_end(key)
        return found

    def put(self, key: PlanKey, generation: int, plan: RunPlan) -> None:
        self._drop(key)
        size = plan.size
        if size > self._max_bytes:
            return
        self._plans[key] = CachedPlan(generation, plan)
        self._bytes += size
        while len(self._plans) > self._size or self._bytes > self._max_bytes:
            self._drop(next(iter(self._plans)))

    def _drop(self, key: PlanKey) -> None:
        gone = self._plans.pop(key, None)
        if gone is not None:
            self._bytes -= gone.plan.size


@dataclass
class ServiceContext:
    uow: UnitOfWorkFactory
    executors: ExecutorSource
    allow_edit: bool = False
    actor: str = field(default_factory=getpass.getuser)
    run_log: RunLog = None  # type: ignore[assignment]  # None: a UowRunLog over uow
    run_plans: RunPlanCache = field(default_factory=RunPlanCache)
    # Where container runs' artifacts are kept; None: listed in the record, not kept.
    artifacts: ArtifactStore | None = None
    # One semaphore per server bounds concurrent runs to the server's max_runs (a new one
    # when an admin changes max_runs).
    _slots: dict[tuple[str, int], asyncio.Semaphore] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.run_log is None:
            self.run_log = UowRunLog(self.uow)

    def slots(self, server: str, max_runs: int) -> asyncio.Semaphore:
        key = (server, max_runs)
        if key not in self._slots:
            self._slots[key] = asyncio.Semaphore(max(max_runs, 1))
        return self._slots[key]


def require_edit(ctx: ServiceContext) -> None:
    """Raises EditNotAllowed unless mer was started with --allow-edit."""
    if not ctx.allow_edit:
        raise EditNotAllowed()
