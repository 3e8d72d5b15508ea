"""What every service call needs: a unit-of-work factory, the executors, the edit policy
and who is acting. Built once by mer/bootstrap.py; tests build one from fakes."""

from __future__ import annotations

import asyncio
import getpass
from dataclasses import dataclass, field
from typing import Protocol

from mer.db.interfaces import UnitOfWorkFactory
from mer.domain import WorkerInfo
from mer.errors import EditNotAllowed
from mer.execution.interface import Executor

__all__ = ["ExecutorSource", "ServiceContext", "require_edit"]


class ExecutorSource(Protocol):
    def get(self, kind: str) -> Executor: ...
    def kinds(self) -> list[str]: ...
    def workers(self) -> list[WorkerInfo]: ...
    async def close(self) -> None: ...


@dataclass
class ServiceContext:
    uow: UnitOfWorkFactory
    executors: ExecutorSource
    allow_edit: bool = False
    actor: str = field(default_factory=getpass.getuser)
    # One semaphore per server bounds concurrent runs to the server's max_runs.
    _slots: dict[str, asyncio.Semaphore] = field(default_factory=dict)

    def slots(self, server: str, max_runs: int) -> asyncio.Semaphore:
        if server not in self._slots:
            self._slots[server] = asyncio.Semaphore(max(max_runs, 1))
        return self._slots[server]


def require_edit(ctx: ServiceContext) -> None:
    """Raises EditNotAllowed unless mer was started with --allow-edit."""
    if not ctx.allow_edit:
        raise EditNotAllowed()
