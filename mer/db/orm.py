"""SQLAlchemy 2 typed models of the MER database: one schema for PostgreSQL and SQLite.

JSON is JSONB on PostgreSQL; a weight vector is a little-endian float64 blob (bytea /
BLOB), which BASELINES.md measured at ~10x faster than float8[] and ~35x faster than
JSON for a 1M-float round trip. Imported only by mer/db (and its migrations/env.py).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Named constraints, so that SQLite batch migrations can find and alter them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JsonDoc = JSON().with_variant(JSONB(), "postgresql")
Timestamp = DateTime(timezone=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ServerRow(Base):
    __tablename__ = "servers"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(50))
    host: Mapped[str | None] = mapped_column(String(255))
    port: Mapped[int | None] = mapped_column(Integer)
    user: Mapped[str | None] = mapped_column(String(100))
    identity_file: Mapped[str | None] = mapped_column(Text)
    known_hosts: Mapped[str | None] = mapped_column(Text)
    max_runs: Mapped[int] = mapped_column(Integer, default=4)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    row_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)
    engine: Mapped[str | None] = mapped_column(String(20))  # kind container (migration 0005)
    # kind slurm (migration 0007).
    partition: Mapped[str | None] = mapped_column(String(100))
    account: Mapped[str | None] = mapped_column(String(100))
    slurm_args: Mapped[str | None] = mapped_column(Text)


class ModelRow(Base):
    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_models_name_version"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(50))
    server_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("servers.id", ondelete="RESTRICT"), index=True)
    command: Mapped[list[str]] = mapped_column(JsonDoc)
    train_command: Mapped[list[str] | None] = mapped_column(JsonDoc)
    mode: Mapped[str] = mapped_column(String(20))
    framing: Mapped[str] = mapped_column(String(20))
    workdir: Mapped[str | None] = mapped_column(Text)
    env: Mapped[dict[str, str]] = mapped_column(JsonDoc)
    timeout: Mapped[float | None] = mapped_column(Float)
    description: Mapped[str] = mapped_column(Text, default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    row_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)
    # A container model (migration 0005).
    image: Mapped[str | None] = mapped_column(String(500))
    cpus: Mapped[float | None] = mapped_column(Float)
    memory: Mapped[str | None] = mapped_column(String(50))
    network: Mapped[str | None] = mapped_column(String(20))


class ParameterRow(Base):
    __tablename__ = "model_parameters"

    model_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("models.id", ondelete="CASCADE"), primary_key=True
    )
    document: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    row_version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)


class WeightRow(Base):
    __tablename__ = "weight_revisions"
    __table_args__ = (
        UniqueConstraint("model_id", "name", "revision", name="uq_weight_revisions_model_name_rev"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    revision: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)  # little-endian float64
    length: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    author: Mapped[str] = mapped_column(String(200))
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    # The training run that produced this revision (`train --save`). No foreign key: the
    # access log is written on its own connection, outside the edit's transaction.
    run_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)


class RunRow(Base):
    """The access log. No foreign key to models: a run's record outlives its model."""

    __tablename__ = "access_log"
    # Each listing's filter, then its order (migration 0008): a page is one index range.
    __table_args__ = (
        Index("ix_access_log_model_started_at", "model", "started_at", "id"),
        Index("ix_access_log_status_started_at", "status", "started_at", "id"),
        Index("ix_access_log_started_at_id", "started_at", "id"),
        # Partial (migration 0007): most runs are of no batch and no pipeline, and an
        # index that holds only the others costs them nothing.
        *(Index(f"ix_access_log_{c}", c, sqlite_where=text(f"{c} IS NOT NULL"),
                postgresql_where=text(f"{c} IS NOT NULL")) for c in ("batch_id", "parent_id")),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    model_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    model: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(50))
    server: Mapped[str] = mapped_column(String(200))
    os_user: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))
    weight_revisions: Mapped[dict[str, int]] = mapped_column(JsonDoc)
    status: Mapped[str] = mapped_column(String(20))
    exit_code: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(Timestamp)
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp)
    bytes_in: Mapped[int] = mapped_column(Integer, default=0)
    bytes_out: Mapped[int] = mapped_column(Integer, default=0)
    stdout: Mapped[str] = mapped_column(Text, default="")
    stderr: Mapped[str] = mapped_column(Text, default="")
    result: Mapped[Any | None] = mapped_column(JsonDoc)
    error: Mapped[str | None] = mapped_column(Text)
    owner_host: Mapped[str | None] = mapped_column(String(255))
    owner_pid: Mapped[int | None] = mapped_column(Integer)
    owner_start: Mapped[str | None] = mapped_column(String(100))
    process_group: Mapped[int | None] = mapped_column(Integer)
    # A container run's output files: [{name, size, sha256, kept}] (migration 0005).
    artifacts: Mapped[list[dict[str, Any]] | None] = mapped_column(JsonDoc)
    # Lineage (migration 0007): the Slurm job, the batch, the parent run (a pipeline's),
    # the alias it was called by, and what makes the run reproducible.
    job_id: Mapped[str | None] = mapped_column(String(100))
    batch_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    parent_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    alias: Mapped[str | None] = mapped_column(String(50))
    snapshot: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc)


class AliasRow(Base):
    """``name@alias`` points at one version of ``name`` (migration 0007). Keyed by name,
    not by a model id: an alias names a version, and moving it is one update."""

    __tablename__ = "model_aliases"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    alias: Mapped[str] = mapped_column(String(50), primary_key=True)
    version: Mapped[str] = mapped_column(String(50))
    updated_at: Mapped[datetime] = mapped_column(Timestamp)


class PipelineRow(Base):
    """A named, ordered list of steps (migration 0007): ``[{"model": "m@live",
    "map": [["result.y", "input.x"], ...] | null}, ...]`` (mer/db/pipeline_repository.py)."""

    __tablename__ = "pipelines"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JsonDoc)
    description: Mapped[str] = mapped_column(Text, default="")
    row_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)


class CatalogStateRow(Base):
    """One row whose ``generation`` grows with every change to servers, models, model
    parameters or weight revisions. Triggers keep it (migration 0002), so no writer,
    mer's or an admin's SQL, can forget it. A shell caches what a run needs and checks
    this one number instead of reading the catalog again for every run."""

    __tablename__ = "catalog_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    generation: Mapped[int] = mapped_column(BigInteger, default=0)


class AuditRow(Base):
    __tablename__ = "audit_log"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(50))
    target: Mapped[str] = mapped_column(String(300), index=True)
    before: Mapped[Any | None] = mapped_column(JsonDoc)
    after: Mapped[Any | None] = mapped_column(JsonDoc)
    at: Mapped[datetime] = mapped_column(Timestamp, index=True)


class CatalogSeedRow(Base):
    """A catalog entry that a catalog load has offered once (a server, a model, one of its
    parameters or weight vectors), so a later load never brings back what an admin
    removed. ``kind`` is server, model, param or weights; ``key`` its name (``gpu1``,
    ``linear@1``, ``linear@1/bias``, ``linear@1/w``)."""

    __tablename__ = "catalog_seeds"

    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    seeded_at: Mapped[datetime] = mapped_column(Timestamp)
