"""In-memory fakes one layer up: a unit of work and an executor registry for fast
service tests. They keep the interfaces' semantics (AlreadyExists, ConflictError on a
stale row_version, nothing visible before commit)."""

from __future__ import annotations

import copy
import dataclasses
from datetime import datetime
from typing import Any
from uuid import UUID

from mer.domain import (
    AuditEntry,
    ModelAlias,
    ModelConfig,
    ModelParameters,
    Pipeline,
    RunRecord,
    RunRequest,
    RunResult,
    RunStatus,
    RunTarget,
    Server,
    ServerCheck,
    WeightRevision,
    to_vector,
    utcnow,
    vector_sha256,
)
from mer.errors import (
    AlreadyExists,
    ConflictError,
    ExecutorNotFound,
    PipelineNotFound,
    RunNotFound,
    ServerNotFound,
    UsageError,
)


class FakeStore:
    def __init__(self) -> None:
        self.servers: dict[str, Server] = {}
        self.models: dict[UUID, ModelConfig] = {}
        self.aliases: dict[tuple[str, str], ModelAlias] = {}
        self.params: dict[UUID, ModelParameters] = {}
        self.weights: list[WeightRevision] = []
        self.runs: dict[UUID, RunRecord] = {}
        self.audit: list[AuditEntry] = []
        self.pipelines: dict[str, Pipeline] = {}


class _Servers:
    def __init__(self, s: FakeStore) -> None:
        self.s = s

    async def list(self) -> list[Server]:
        return [copy.deepcopy(v) for _, v in sorted(self.s.servers.items())]

    async def get(self, name: str) -> Server | None:
        return copy.deepcopy(self.s.servers.get(name))

    async def add(self, server: Server) -> Server:
        if server.name in self.s.servers:
            raise AlreadyExists(f"server '{server.name}' already exists")
        self.s.servers[server.name] = dataclasses.replace(server, row_version=1)
        return copy.deepcopy(self.s.servers[server.name])

    async def update(self, server: Server) -> Server:
        cur = self.s.servers.get(server.name)
        if cur is None or cur.row_version != server.row_version:
            raise ConflictError(f"server '{server.name}' was changed by someone else")
        self.s.servers[server.name] = dataclasses.replace(server, row_version=cur.row_version + 1)
        return copy.deepcopy(self.s.servers[server.name])

    async def remove(self, name: str) -> None:
        if self.s.servers.pop(name, None) is None:
            raise ServerNotFound(name)


class FakeModels:
    def __init__(self, s: FakeStore) -> None:
        self.s = s

    async def list(self, server: str | None = None) -> list[ModelConfig]:
        return sorted((copy.deepcopy(m) for m in self.s.models.values()
                       if server is None or m.server == server), key=lambda m: (m.name, m.version))

    async def get(self, name: str, version: str | None = None) -> ModelConfig | None:
        found = [m for m in self.s.models.values() if m.name == name]
        if version is not None:
            alias = self.s.aliases.get((name, version))
            exact = [m for m in found if m.version == version]
            found = exact or [m for m in found if alias is not None and m.version == alias.version]
        else:
            found = [m for m in found if m.enabled] or found  # the newest enabled version
        return copy.deepcopy(max(found, key=lambda m: m.version)) if found else None

    async def get_by_id(self, model_id: UUID) -> ModelConfig | None:
        return copy.deepcopy(self.s.models.get(model_id))

    async def get_run_target(self, name: str, version: str | None = None) -> RunTarget | None:
        model = await self.get(name, version)
        if model is None:
            return None
        params = self.s.params.get(model.id)
        return RunTarget(model, copy.deepcopy(self.s.servers[model.server]),
                         copy.deepcopy(params.values) if params else {})

    async def add(self, model: ModelConfig) -> ModelConfig:
        found = await self.get(model.name, model.version)
        if found is not None and found.version != model.version:
            raise AlreadyExists(f"'{model.ref}' is an alias of {found.ref}")
        if found is not None:
            raise AlreadyExists(f"model '{model.ref}' already exists")
        if model.server not in self.s.servers:
            raise ServerNotFound(model.server)
        self.s.models[model.id] = dataclasses.replace(model, row_version=1)
        return copy.deepcopy(self.s.models[model.id])

    async def update(self, model: ModelConfig) -> ModelConfig:
        cur = self.s.models.get(model.id)
        if cur is None or cur.row_version != model.row_version:
            raise ConflictError(f"model '{model.ref}' was changed by someone else")
        self.s.models[model.id] = dataclasses.replace(model, row_version=cur.row_version + 1)
        return copy.deepcopy(self.s.models[model.id])

    async def remove(self, model_id: UUID) -> None:
        self.s.models.pop(model_id)
        self.s.params.pop(model_id, None)
        self.s.weights = [w for w in self.s.weights if w.model_id != model_id]


class _Aliases:
    def __init__(self, s: FakeStore) -> None:
        self.s = s

    async def list(self, name: str | None = None) -> list[ModelAlias]:
        return [copy.deepcopy(a) for _, a in sorted(self.s.aliases.items())
                if name is None or a.name == name]

    async def get(self, name: str, alias: str) -> ModelAlias | None:
        return copy.deepcopy(self.s.aliases.get((name, alias)))

    async def set(self, alias: ModelAlias) -> ModelAlias:
        stored = dataclasses.replace(alias, updated_at=utcnow())
        self.s.aliases[(alias.name, alias.alias)] = stored
        return copy.deepcopy(stored)

    async def remove(self, name: str, alias: str) -> bool:
        return self.s.aliases.pop((name, alias), None) is not None


class _Params:
    def __init__(self, s: FakeStore) -> None:
        self.s = s

    async def get(self, model_id: UUID) -> ModelParameters:
        return copy.deepcopy(self.s.params.get(model_id, ModelParameters(model_id, {}, 0)))

    async def set(self, params: ModelParameters) -> ModelParameters:
        cur = self.s.params.get(params.model_id, ModelParameters(params.model_id, {}, 0))
        if cur.row_version != params.row_version:
            raise ConflictError("the parameters were changed by someone else")
        self.s.params[params.model_id] = ModelParameters(params.model_id, copy.deepcopy(params.values),
                                                         params.row_version + 1)
        return copy.deepcopy(self.s.params[params.model_id])


class _Weights:
    def __init__(self, s: FakeStore) -> None:
        self.s = s

    async def append(self, model_id, name, values, author, note="", run_id=None, base=None):  # type: ignore[no-untyped-def]
        try:
            vec = to_vector(values)
        except ValueError as err:
            raise UsageError(str(err)) from err
        newest = max((w.revision for w in self.s.weights if w.model_id == model_id and w.name == name),
                     default=0)
        if base is not None and base != newest:
            raise ConflictError(f"weights '{name}' got a new revision from someone else at the same time")
        rev = newest + 1
        w = WeightRevision(model_id, name, rev, vec, vector_sha256(vec), author, note, created_at=utcnow(),
                           run_id=run_id)
        self.s.weights.append(w)
        return copy.deepcopy(w)

    async def latest(self, model_id):  # type: ignore[no-untyped-def]
        out: dict[str, WeightRevision] = {}
        for w in self.s.weights:
            if w.model_id == model_id and (w.name not in out or w.revision > out[w.name].revision):
                out[w.name] = w
        return [copy.deepcopy(out[k]) for k in sorted(out)]

    async def get(self, model_id, name, revision=None):  # type: ignore[no-untyped-def]
        revs = [w for w in self.s.weights if w.model_id == model_id and w.name == name
                and (revision is None or w.revision == revision)]
        return copy.deepcopy(max(revs, key=lambda w: w.revision)) if revs else None

    async def history(self, model_id, name):  # type: ignore[no-untyped-def]
        return sorted((copy.deepcopy(w) for w in self.s.weights if w.model_id == model_id and w.name == name),
                      key=lambda w: w.revision)

    async def names(self, model_id):  # type: ignore[no-untyped-def]
        return sorted({w.name for w in self.s.weights if w.model_id == model_id})

    async def remove(self, model_id, name, newest):  # type: ignore[no-untyped-def]
        kept = [w for w in self.s.weights if not (w.model_id == model_id and w.name == name)]
        if len(self.s.weights) - len(kept) != newest:
            raise ConflictError(f"weights '{name}' got a new revision from someone else at the same time")
        self.s.weights = kept


class _Runs:
    def __init__(self, s: FakeStore) -> None:
        self.s = s

    async def start(self, record: RunRecord) -> None:
        self.s.runs[record.id] = copy.deepcopy(record)

    async def finish(self, record: RunRecord) -> bool:
        row = self.s.runs.get(record.id)
        if row is None or row.status not in (RunStatus.RUNNING, RunStatus.QUEUED):
            return False  # as the SQL: a row that has its ending keeps it
        kept = (row.owner_host, row.owner_pid, row.owner_start, row.process_group)
        self.s.runs[record.id] = copy.deepcopy(record)
        new = self.s.runs[record.id]
        new.owner_host, new.owner_pid, new.owner_start, new.process_group = kept
        return True

    async def claim(self, record: RunRecord) -> None:
        row = self.s.runs.get(record.id)
        if row is not None and row.status is RunStatus.RUNNING:
            row.process_group = record.process_group

    async def batch_ids(self, prefix: str, limit: int = 2) -> list[UUID]:
        found = {r.batch_id for r in self.s.runs.values() if r.batch_id and r.batch_id.hex.startswith(prefix)}
        return sorted(found)[:limit]

    async def running_on(self, host: str) -> list[RunRecord]:
        return [copy.deepcopy(r) for r in self.s.runs.values()
                if r.status is RunStatus.RUNNING and r.owner_host == host]

    async def get(self, run_id):  # type: ignore[no-untyped-def]
        for r in self.s.runs.values():
            if str(r.id).startswith(str(run_id)):
                return copy.deepcopy(r)
        return None

    async def query(self, model=None, status=None, since=None, limit=50, batch_id=None, *,  # type: ignore[no-untyped-def]
                    before=None, offset=0):
        def order(r: RunRecord) -> tuple[datetime, str]:
            return r.started_at, r.id.hex

        rows = [r for r in self.s.runs.values() if (model is None or r.model == model)
                and (status is None or r.status == status) and (since is None or r.started_at >= since)
                and (batch_id is None or r.batch_id == batch_id)]
        if before is not None:
            if before not in self.s.runs:
                raise RunNotFound(str(before))
            rows = [r for r in rows if order(r) < order(self.s.runs[before])]
        rows = sorted(rows, key=order, reverse=True)[offset:offset + limit]
        return [dataclasses.replace(r, stdout="", stderr="", snapshot=None) for r in copy.deepcopy(rows)]

    def _prunable(self, cutoff, statuses):  # type: ignore[no-untyped-def]
        return sorted((r for r in self.s.runs.values()
                       if r.started_at < cutoff and r.status in statuses),
                      key=lambda r: (r.started_at, r.id.hex))

    async def count_prunable(self, cutoff, statuses):  # type: ignore[no-untyped-def]
        return len(self._prunable(cutoff, statuses))

    async def delete_prunable(self, cutoff, statuses, limit):  # type: ignore[no-untyped-def]
        gone = self._prunable(cutoff, statuses)[:limit]
        for r in gone:
            del self.s.runs[r.id]
        return len(gone)

    async def children(self, parent_id: UUID) -> list[RunRecord]:
        rows = [r for r in self.s.runs.values() if r.parent_id == parent_id]
        return copy.deepcopy(sorted(rows, key=lambda r: r.started_at))


class _Pipelines:
    def __init__(self, s: FakeStore) -> None:
        self.s = s

    async def list(self) -> list[Pipeline]:
        return [copy.deepcopy(v) for _, v in sorted(self.s.pipelines.items())]

    async def get(self, name: str) -> Pipeline | None:
        return copy.deepcopy(self.s.pipelines.get(name))

    async def add(self, pipeline: Pipeline) -> Pipeline:
        if pipeline.name in self.s.pipelines:
            raise AlreadyExists(f"pipeline '{pipeline.name}' already exists")
        now = utcnow()
        self.s.pipelines[pipeline.name] = dataclasses.replace(
            copy.deepcopy(pipeline), row_version=1, created_at=now, updated_at=now)
        return copy.deepcopy(self.s.pipelines[pipeline.name])

    async def remove(self, name: str) -> None:
        if self.s.pipelines.pop(name, None) is None:
            raise PipelineNotFound(name)


class _Audit:
    def __init__(self, s: FakeStore) -> None:
        self.s = s

    async def append(self, entry: AuditEntry) -> None:
        self.s.audit.append(entry)

    async def replace(self, entry: AuditEntry) -> None:
        self.s.audit = [a for a in self.s.audit if a.id != entry.id] + [entry]

    async def query(self, target=None, limit=50, *, targets_like=(), since=None,  # type: ignore[no-untyped-def]
                    actor=None):
        import fnmatch

        def like(text: str, pattern: str) -> bool:
            return fnmatch.fnmatchcase(text, pattern.replace("\\_", "_").replace("%", "*"))

        return [a for a in reversed(self.s.audit)
                if (target is None or a.target == target)
                and (not targets_like or any(like(a.target, p) for p in targets_like))
                and (since is None or a.at >= since) and (actor is None or a.actor == actor)
                ][:limit]


class FakeUnitOfWork:
    """Works on a copy of the store; commit publishes it, leaving without commit drops it."""

    def __init__(self, store: FakeStore) -> None:
        self.store = store
        self.committed = False

    async def __aenter__(self) -> FakeUnitOfWork:
        self.work = copy.deepcopy(self.store)
        self.servers, self.models = _Servers(self.work), FakeModels(self.work)
        self.aliases = _Aliases(self.work)
        self.parameters, self.weights = _Params(self.work), _Weights(self.work)
        self.runs, self.audit = _Runs(self.work), _Audit(self.work)
        self.pipelines = _Pipelines(self.work)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        return None

    async def commit(self) -> None:
        self.store.__dict__.update(self.work.__dict__)
        self.work = copy.deepcopy(self.store)
        self.committed = True

    async def rollback(self) -> None:
        self.work = copy.deepcopy(self.store)


class FakeExecutor:
    """Returns canned RunResults and remembers what it was asked to run."""

    kind = "local"

    def __init__(self, result: RunResult | None = None) -> None:
        self.result = result or RunResult(status=RunStatus.SUCCEEDED, exit_code=0, result={"ok": True})
        self.requests: list[RunRequest] = []
        self.error: Exception | None = None
        self.hang = False

    async def run(self, request, server, sinks=None):  # type: ignore[no-untyped-def]
        import asyncio

        self.requests.append(request)
        if self.error is not None:
            raise self.error
        if self.hang:
            await asyncio.sleep(3600)
        started = utcnow()
        return dataclasses.replace(self.result, started_at=started, finished_at=utcnow())

    async def check(self, server):  # type: ignore[no-untyped-def]
        return ServerCheck(server=server.name, reachable=True, latency_ms=0.1)

    async def host_key(self, server):  # type: ignore[no-untyped-def]
        return "ssh-ed25519 SHA256:fake"

    async def trust(self, server, expect=None):  # type: ignore[no-untyped-def]
        from mer.errors import HostKeyError

        if expect is not None and expect not in ("ssh-ed25519 SHA256:fake", "SHA256:fake"):
            raise HostKeyError(f"{server.name} presents ssh-ed25519 SHA256:fake, not the "
                               f"expected {expect}; nothing was recorded")
        return "ssh-ed25519 SHA256:fake"

    async def stop_worker(self, server, model, version=None):  # type: ignore[no-untyped-def]
        return 0

    def workers(self):  # type: ignore[no-untyped-def]
        return []

    async def close(self) -> None:
        return None


class FakeRegistry:
    def __init__(self, executor: FakeExecutor | None = None) -> None:
        self.executor = executor or FakeExecutor()

    def get(self, kind: str) -> FakeExecutor:
        if kind not in ("local", "ssh"):
            raise ExecutorNotFound(f"no executor for server kind '{kind}'")
        return self.executor

    def kinds(self) -> list[str]:
        return ["local", "ssh"]

    def workers(self) -> list[Any]:
        return []

    async def close(self) -> None:
        return None
