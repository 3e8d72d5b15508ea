"""SQLAlchemy implementations of the repository interfaces in mer/db/interfaces.py
(the access log's own in mer/db/run_records.py, weight revisions' in
mer/db/weight_repository.py).

Every method returns mer.domain dataclasses, never ORM rows, so nothing of SQLAlchemy
leaks upwards and no lazy load can happen in async code. Updates are single
``UPDATE ... WHERE id = :id AND row_version = :seen`` statements: a stale caller matches
no row and gets a ConflictError, on PostgreSQL and SQLite alike.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, overload
from uuid import UUID

from sqlalchemy import CursorResult, Executable, Select, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from mer.db.engine import map_errors
from mer.db.orm import AliasRow, AuditRow, ModelRow, ParameterRow, ServerRow, WeightRow
from mer.domain import (
    AuditEntry,
    ModelConfig,
    ModelParameters,
    RunTarget,
    Server,
    utcnow,
)
from mer.errors import (
    AlreadyExists,
    ConflictError,
    ModelNotFound,
    ServerNotFound,
    StorageError,
    UsageError,
)

__all__ = [
    "SqlAuditRepository",
    "SqlModelRepository",
    "SqlParameterRepository",
    "SqlServerRepository",
]


@overload
def _aware(ts: datetime) -> datetime: ...
@overload
def _aware(ts: None) -> None: ...
def _aware(ts: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive; every mer timestamp is UTC-aware."""
    if ts is not None and ts.tzinfo is None:
        return ts.replace(tzinfo=UTC)
    return ts


async def _matched(session: AsyncSession, stmt: Executable, params: dict[str, Any] | None = None) -> int:
    """How many rows an UPDATE or DELETE matched."""
    result = await session.execute(stmt, params)
    # NOTE: typed as a plain Result; a DML statement's is a CursorResult, which counts.
    assert isinstance(result, CursorResult)
    return result.rowcount


def _natural_key(version: str) -> list[Any]:
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", version) if p]


def _conflict(what: str, show: str) -> ConflictError:
    return ConflictError(
        f"{what} was changed by someone else since you read it; reload with `{show}` and retry"
    )


class _Repo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session


class SqlServerRepository(_Repo):
    @staticmethod
    def _to_domain(row: ServerRow) -> Server:
        return Server(
            name=row.name, kind=row.kind, host=row.host, port=row.port, user=row.user,
            identity_file=row.identity_file, known_hosts=row.known_hosts,
            max_runs=row.max_runs, enabled=row.enabled, engine=row.engine,
            partition=row.partition, account=row.account, slurm_args=row.slurm_args, id=row.id,
            row_version=row.row_version, created_at=_aware(row.created_at),
            updated_at=_aware(row.updated_at),
        )

    @staticmethod
    def _values(s: Server) -> dict[str, Any]:
        return dict(
            name=s.name, kind=s.kind, host=s.host, port=s.port, user=s.user,
            identity_file=s.identity_file, known_hosts=s.known_hosts, max_runs=s.max_runs,
            enabled=s.enabled, engine=s.engine, partition=s.partition, account=s.account,
            slurm_args=s.slurm_args,
        )

    async def list(self) -> list[Server]:
        with map_errors():
            rows = await self.session.scalars(select(ServerRow).order_by(ServerRow.name))
            return [self._to_domain(r) for r in rows]

    async def get(self, name: str) -> Server | None:
        with map_errors():
            row = await self.session.scalar(select(ServerRow).where(ServerRow.name == name))
            return self._to_domain(row) if row else None

    async def add(self, server: Server) -> Server:
        now = utcnow()
        if await self.get(server.name) is not None:
            raise AlreadyExists(f"server '{server.name}' already exists; see `servers`")
        with map_errors():
            await self.session.execute(
                insert(ServerRow).values(
                    id=server.id, row_version=1, created_at=now, updated_at=now,
                    **self._values(server),
                )
            )
        return await self._require(server.name)

    async def update(self, server: Server) -> Server:
        with map_errors():
            matched = await _matched(
                self.session,
                update(ServerRow)
                .where(ServerRow.id == server.id, ServerRow.row_version == server.row_version)
                .values(row_version=ServerRow.row_version + 1, updated_at=utcnow(),
                        **self._values(server))
            )
        if matched != 1:
            raise _conflict(f"server '{server.name}'", "servers")
        return await self._require(server.name)

    async def remove(self, name: str) -> None:
        try:
            with map_errors():
                matched = await _matched(self.session, delete(ServerRow).where(ServerRow.name == name))
                await self.session.flush()
        except StorageError as err:
            if isinstance(err.__cause__, IntegrityError):
                raise UsageError(
                    f"server '{name}' still has models; remove or move them first"
                ) from err
            raise
        if matched != 1:
            raise ServerNotFound(name)

    async def _require(self, name: str) -> Server:
        server = await self.get(name)
        if server is None:
            raise ServerNotFound(name)
        return server


class SqlModelRepository(_Repo):
    def _select(self) -> Select[ModelRow, str]:
        return select(ModelRow, ServerRow.name).join(ServerRow, ModelRow.server_id == ServerRow.id)

    @staticmethod
    def _to_domain(row: ModelRow, server: str) -> ModelConfig:
        return ModelConfig(
            name=row.name, version=row.version, server=server, command=list(row.command),
            train_command=list(row.train_command) if row.train_command else None,
            mode=row.mode, framing=row.framing, workdir=row.workdir, env=dict(row.env or {}),
            timeout=row.timeout, description=row.description, enabled=row.enabled,
            image=row.image, cpus=row.cpus, memory=row.memory, network=row.network, id=row.id,
            row_version=row.row_version, created_at=_aware(row.created_at),
            updated_at=_aware(row.updated_at),
        )

    async def _server_id(self, name: str) -> UUID:
        with map_errors():
            sid = await self.session.scalar(select(ServerRow.id).where(ServerRow.name == name))
        if sid is None:
            raise ServerNotFound(name)
        return sid

    async def _values(self, m: ModelConfig) -> dict[str, Any]:
        return dict(
            name=m.name, version=m.version, server_id=await self._server_id(m.server),
            command=list(m.command), train_command=list(m.train_command) if m.train_command else None,
            mode=m.mode, framing=m.framing, workdir=m.workdir, env=dict(m.env),
            timeout=m.timeout, description=m.description, enabled=m.enabled,
            image=m.image, cpus=m.cpus, memory=m.memory, network=m.network,
        )

    async def list(self, server: str | None = None) -> list[ModelConfig]:
        stmt = self._select()
        if server is not None:
            stmt = stmt.where(ServerRow.name == server)
        with map_errors():
            rows = (await self.session.execute(stmt)).all()
        models = [self._to_domain(r, s) for r, s in rows]
        models.sort(key=lambda m: (m.name, _natural_key(m.version)))
        return models

    async def _newest(self, stmt: Any, name: str, version: str | None) -> Any:
        """The row of that version, or of the version an alias of that name points at;
        without a version, the newest enabled version (natural order) of name, else the
        newest. One query either way: the alias is a subquery, not a round trip."""
        stmt = stmt.where(ModelRow.name == name)
        if version is not None:
            aliased = select(AliasRow.version).where(AliasRow.name == name,
                                                     AliasRow.alias == version)
            stmt = stmt.where(or_(ModelRow.version == version, ModelRow.version.in_(aliased)))
        with map_errors():
            rows = (await self.session.execute(stmt)).all()
        if not rows:
            return None
        if version is not None:
            # A version of that name wins over an alias spelled the same (which the
            # services refuse to create anyway).
            return next((r for r in rows if r[0].version == version), rows[0])
        enabled = [r for r in rows if r[0].enabled] or rows
        return max(enabled, key=lambda r: _natural_key(r[0].version))

    async def get(self, name: str, version: str | None = None) -> ModelConfig | None:
        found = await self._newest(self._select(), name, version)
        return self._to_domain(*found) if found else None

    async def get_run_target(self, name: str, version: str | None = None) -> RunTarget | None:
        found = await self._newest(
            select(ModelRow, ServerRow, ParameterRow.document)
            .join(ServerRow, ModelRow.server_id == ServerRow.id)
            .outerjoin(ParameterRow, ParameterRow.model_id == ModelRow.id),
            name, version,
        )
        if found is None:
            return None
        model, server, document = found
        return RunTarget(
            model=self._to_domain(model, server.name),
            server=SqlServerRepository._to_domain(server),
            parameters=dict(document or {}),
        )

    async def get_by_id(self, model_id: UUID) -> ModelConfig | None:
        with map_errors():
            found = (await self.session.execute(self._select().where(ModelRow.id == model_id))).first()
        return self._to_domain(*found) if found else None

    async def add(self, model: ModelConfig) -> ModelConfig:
        found = await self.get(model.name, model.version)
        if found is not None and found.version != model.version:
            raise AlreadyExists(f"'{model.ref}' is an alias of {found.ref}; give the new version "
                                f"another name (or `model unalias {model.name} {model.version}`)")
        if found is not None:
            raise AlreadyExists(f"model '{model.ref}' already exists; see `show {model.ref}`")
        now = utcnow()
        values = await self._values(model)
        with map_errors():
            await self.session.execute(
                insert(ModelRow).values(id=model.id, row_version=1, created_at=now,
                                        updated_at=now, **values)
            )
        return await self._require(model.id, model.ref)

    async def update(self, model: ModelConfig) -> ModelConfig:
        values = await self._values(model)
        try:
            with map_errors():
                matched = await _matched(
                    self.session,
                    update(ModelRow)
                    .where(ModelRow.id == model.id, ModelRow.row_version == model.row_version)
                    .values(row_version=ModelRow.row_version + 1, updated_at=utcnow(), **values)
                )
        except StorageError as err:
            if isinstance(err.__cause__, IntegrityError):
                raise AlreadyExists(f"model '{model.ref}' already exists") from err
            raise
        if matched != 1:
            raise _conflict(f"model '{model.ref}'", f"show {model.ref}")
        return await self._require(model.id, model.ref)

    async def remove(self, model_id: UUID) -> None:
        with map_errors():
            # Explicit deletes: SQLite's ON DELETE CASCADE needs foreign_keys=ON, which the
            # engine sets, but a shared connection from elsewhere might not have.
            await self.session.execute(delete(ParameterRow).where(ParameterRow.model_id == model_id))
            await self.session.execute(delete(WeightRow).where(WeightRow.model_id == model_id))
            matched = await _matched(self.session, delete(ModelRow).where(ModelRow.id == model_id))
        if matched != 1:
            raise ModelNotFound(str(model_id))

    async def _require(self, model_id: UUID, ref: str) -> ModelConfig:
        model = await self.get_by_id(model_id)
        if model is None:
            raise ModelNotFound(ref)
        return model


class SqlParameterRepository(_Repo):
    async def get(self, model_id: UUID) -> ModelParameters:
        with map_errors():
            row = await self.session.get(ParameterRow, model_id)
        if row is None:
            return ModelParameters(model_id=model_id, values={}, row_version=0)
        return ModelParameters(model_id=model_id, values=dict(row.document),
                               row_version=row.row_version, updated_at=_aware(row.updated_at))

    async def set(self, params: ModelParameters) -> ModelParameters:
        now = utcnow()
        with map_errors():
            if params.row_version == 0:
                exists = await self.session.scalar(
                    select(ParameterRow.row_version).where(ParameterRow.model_id == params.model_id)
                )
                if exists is not None:
                    raise _conflict("the parameters", "show")
                try:
                    async with self.session.begin_nested():
                        await self.session.execute(
                            insert(ParameterRow).values(model_id=params.model_id,
                                                        document=params.values, row_version=1,
                                                        updated_at=now)
                        )
                except IntegrityError as err:
                    raise _conflict("the parameters", "show") from err
                return ModelParameters(params.model_id, dict(params.values), 1, now)
            matched = await _matched(
                self.session,
                update(ParameterRow)
                .where(ParameterRow.model_id == params.model_id,
                       ParameterRow.row_version == params.row_version)
                .values(document=params.values, row_version=ParameterRow.row_version + 1,
                        updated_at=now)
            )
        if matched != 1:
            raise _conflict("the parameters", "show")
        return ModelParameters(params.model_id, dict(params.values), params.row_version + 1, now)


class SqlAuditRepository(_Repo):
    async def append(self, entry: AuditEntry) -> None:
        with map_errors():
            await self.session.execute(
                insert(AuditRow).values(id=entry.id, actor=entry.actor, action=entry.action,
                                        target=entry.target, before=entry.before,
                                        after=entry.after, at=entry.at)
            )

    async def replace(self, entry: AuditEntry) -> None:
        with map_errors():
            await self.session.execute(delete(AuditRow).where(AuditRow.id == entry.id))
        await self.append(entry)

    async def query(self, target: str | None = None, limit: int = 50, *,
                    targets_like: Sequence[str] = (), since: datetime | None = None,
                    actor: str | None = None) -> list[AuditEntry]:
        stmt = select(AuditRow).order_by(AuditRow.at.desc()).limit(limit)
        if target is not None:
            stmt = stmt.where(AuditRow.target == target)
        if targets_like:
            stmt = stmt.where(or_(*(AuditRow.target.like(p, escape="\\") for p in targets_like)))
        if since is not None:
            stmt = stmt.where(AuditRow.at >= since)
        if actor is not None:
            stmt = stmt.where(AuditRow.actor == actor)
        with map_errors():
            rows = await self.session.scalars(stmt)
            return [
                AuditEntry(actor=r.actor, action=r.action, target=r.target, before=r.before,
                           after=r.after, id=r.id, at=_aware(r.at))
                for r in rows
            ]
