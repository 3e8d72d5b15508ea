"""Repository and unit-of-work interfaces of the DAL, in terms of mer.domain only.

The services depend on these Protocols, never on SQLAlchemy: the SQL implementation
lives in mer/db/repository.py, an in-memory fake in tests/fakes.py, and a non-SQL
backend (the original MER used SurrealDB) could fit behind the same methods.

Errors: lookups of a missing row return None (``get_*``) or raise a NotFound subclass
(methods that need the row); a unique name taken raises AlreadyExists; an update whose
``row_version`` no longer matches raises ConflictError; any backend failure raises
StorageError. Nothing is visible to other sessions until ``UnitOfWork.commit``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol, Self
from uuid import UUID

from mer.domain import (
    AuditEntry,
    ModelAlias,
    ModelConfig,
    ModelParameters,
    Pipeline,
    RunRecord,
    RunStatus,
    RunTarget,
    Server,
    WeightRevision,
)

__all__ = [
    "AliasRepository",
    "AuditRepository",
    "ModelRepository",
    "ParameterRepository",
    "PipelineRepository",
    "RunLog",
    "RunRepository",
    "SeedRepository",
    "ServerRepository",
    "UnitOfWork",
    "UnitOfWorkFactory",
    "WeightRepository",
]


class ServerRepository(Protocol):
    async def list(self) -> list[Server]: ...
    async def get(self, name: str) -> Server | None: ...
    async def add(self, server: Server) -> Server: ...
    async def update(self, server: Server) -> Server:
        """Write every field; ``server.row_version`` must be the version read. Returns the
        stored server with its new row_version."""
        ...
    async def remove(self, name: str) -> None: ...


class ModelRepository(Protocol):
    async def list(self, server: str | None = None) -> list[ModelConfig]: ...
    async def get(self, name: str, version: str | None = None) -> ModelConfig | None:
        """``version=None`` picks the newest enabled version of that name (natural sort;
        the newest of all when none is enabled). A ``version`` that is no version of the
        model is looked up as one of its aliases (``live`` of ``m@live``): the one place
        where a model reference is resolved."""
        ...
    async def get_by_id(self, model_id: UUID) -> ModelConfig | None: ...
    async def get_run_target(self, name: str, version: str | None = None) -> RunTarget | None:
        """The model (as ``get``), its server and its parameters in one round trip: the
        hot path of every run."""
        ...
    async def add(self, model: ModelConfig) -> ModelConfig: ...
    async def update(self, model: ModelConfig) -> ModelConfig:
        """Write every field; ``model.row_version`` must be the version read."""
        ...
    async def remove(self, model_id: UUID) -> None:
        """Removes the model with its parameters and weights; runs and audit rows stay."""
        ...


class AliasRepository(Protocol):
    """Aliases of model versions (``m@live`` -> ``m@3``), keyed by (model name, alias)."""

    async def list(self, name: str | None = None) -> list[ModelAlias]:
        """Sorted by model name, then alias; only ``name``'s when given."""
        ...
    async def get(self, name: str, alias: str) -> ModelAlias | None: ...
    async def set(self, alias: ModelAlias) -> ModelAlias:
        """Point the alias at ``alias.version``: a new alias, or one moved (one row).
        Raises ConflictError when another session created it at the same time."""
        ...
    async def remove(self, name: str, alias: str) -> bool:
        """Whether there was such an alias."""
        ...


class ParameterRepository(Protocol):
    async def get(self, model_id: UUID) -> ModelParameters:
        """An empty document (row_version 0) when the model has none yet."""
        ...
    async def set(self, params: ModelParameters) -> ModelParameters:
        """Replace the document; ``params.row_version`` must be the version read (0 for a
        model that had none)."""
        ...


class WeightRepository(Protocol):
    async def append(
        self, model_id: UUID, name: str, values: Sequence[float], author: str, note: str = "",
        run_id: UUID | None = None, base: int | None = None,
    ) -> WeightRevision:
        """Store a new immutable revision, made by training run ``run_id`` if given. It
        is ``base`` + 1 when the caller read ``base`` as the newest (0: no vector), and a
        ConflictError if someone else stored that one meanwhile; else the newest + 1.
        Raises UsageError for values that are not finite numbers."""
        ...
    async def latest(self, model_id: UUID) -> list[WeightRevision]:
        """The newest revision of every vector of the model, values included."""
        ...
    async def get(self, model_id: UUID, name: str, revision: int | None = None) -> WeightRevision | None: ...
    async def history(self, model_id: UUID, name: str) -> list[WeightRevision]:
        """Every revision, oldest first, WITHOUT values (an empty array): cheap to list."""
        ...
    async def names(self, model_id: UUID) -> list[str]: ...
    async def remove(self, model_id: UUID, name: str, newest: int) -> None:
        """Delete the vector with every revision; a ConflictError if its newest revision
        is no longer ``newest`` (someone else appended one meanwhile)."""
        ...


class RunRepository(Protocol):
    async def start(self, record: RunRecord) -> None: ...
    async def finish(self, record: RunRecord) -> bool:
        """Write the record over the row written by start (status, exit code, end, bytes,
        output), if that row is still running; returns whether it was."""
        ...
    async def claim(self, record: RunRecord) -> None:
        """Record the model's process group (``record.process_group``) on its running row."""
        ...
    async def running_on(self, host: str) -> list[RunRecord]:
        """Rows still running whose owner is a mer on ``host``."""
        ...
    async def get(self, run_id: UUID | str) -> RunRecord | None:
        """Accepts a full id or a unique prefix of at least 4 hex characters."""
        ...
    async def query(
        self,
        model: str | None = None,
        status: RunStatus | None = None,
        since: datetime | None = None,
        limit: int = 50,
        batch_id: UUID | None = None,
        *,
        before: UUID | None = None,
        offset: int = 0,
    ) -> list[RunRecord]:
        """Newest first (started_at, then id, descending); ``before``: only the rows after
        that run in this order (RunNotFound if there is no such run), then ``offset``
        rows skipped. Without the output (stdout, stderr) and the snapshot."""
        ...
    async def count_prunable(self, cutoff: datetime, statuses: Collection[RunStatus]) -> int:
        """How many rows started before ``cutoff`` have one of ``statuses``."""
        ...
    async def delete_prunable(self, cutoff: datetime, statuses: Collection[RunStatus],
                              limit: int) -> int:
        """Delete the oldest ``limit`` of those rows; returns how many went."""
        ...
    async def children(self, parent_id: UUID) -> list[RunRecord]:
        """The runs whose parent is ``parent_id`` (a pipeline run's steps), oldest first."""
        ...

    async def batch_ids(self, prefix: str, limit: int = 2) -> list[UUID]:
        """Batch ids starting with ``prefix`` (lowercase hex without dashes)."""
        ...


class AuditRepository(Protocol):
    async def append(self, entry: AuditEntry) -> None: ...
    async def replace(self, entry: AuditEntry) -> None:
        """Write ``entry`` over the entry with its id (or add it): an edit made in several
        transactions keeps one entry that says, in each of them, how far it got."""
        ...
    async def query(self, target: str | None = None, limit: int = 50, *,
                    targets_like: Sequence[str] = (), since: datetime | None = None,
                    actor: str | None = None) -> list[AuditEntry]:
        """Newest first; ``targets_like`` are SQL LIKE patterns (``\\`` escapes)."""
        ...


class PipelineRepository(Protocol):
    async def list(self) -> list[Pipeline]: ...
    async def get(self, name: str) -> Pipeline | None: ...
    async def add(self, pipeline: Pipeline) -> Pipeline:
        """AlreadyExists when the name is taken."""
        ...
    async def remove(self, name: str) -> None:
        """PipelineNotFound when there is none of that name."""
        ...


class SeedRepository(Protocol):
    """Catalog entries a catalog load has offered once, as (kind, key): ("server", "gpu1"),
    ("model", "linear@1"), ("param", "linear@1/bias"), ("weights", "linear@1/w")."""

    async def all(self) -> set[tuple[str, str]]: ...
    async def add(self, seeds: Iterable[tuple[str, str]]) -> None:
        """Record them (those already recorded are skipped)."""
        ...


class RunLog(Protocol):
    """The hot path of every run, outside any unit of work: each call is its own
    committed transaction. Raises StorageError."""

    async def catalog_generation(self) -> int | None:
        """A number that changes whenever servers, models, parameters or weights change
        (in any process), so what a run needs can be cached while it stays the same.
        None: this store cannot tell; cache nothing."""
        ...
    async def start(self, record: RunRecord) -> int | None:
        """Write the run's access-log row (before the model starts); returns the catalog
        generation as of that write."""
        ...
    async def claim(self, record: RunRecord) -> None:
        """Record the model's process group on the running row."""
        ...
    async def update(self, record: RunRecord) -> None:
        """Write the record's current state over the row written by start (only while
        that row is running). Raises RecordJournaled when a final record was kept in
        the local journal because the database is unreachable."""
        ...
    def update_at_once(self, record: RunRecord) -> bool:
        """The same write made now, without waiting, when this store can (a run's
        ending then needs no task of its own): True. False: nothing was written; await
        ``update``."""
        ...
    async def replay(self) -> int:
        """Write records kept in the journal; returns how many."""
        ...
    async def close(self) -> None: ...


class UnitOfWork(Protocol):
    """One transaction: ``async with uow: ...; await uow.commit()``.
    Leaving the block without commit rolls back."""

    servers: ServerRepository
    models: ModelRepository
    aliases: AliasRepository
    parameters: ParameterRepository
    weights: WeightRepository
    runs: RunRepository
    audit: AuditRepository
    seeds: SeedRepository
    pipelines: PipelineRepository

    async def __aenter__(self) -> Self: ...
    async def __aexit__(self, *exc: Any) -> None: ...
    async def commit(self) -> None: ...
    async def rollback(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self) -> UnitOfWork: ...
