"""What the catalog holds: servers, models (their fixed config, aliases and parameters),
pipelines, and the audit entry of a live edit; a server's check as an executor reports it.
No I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from mer.domain.clock import utcnow

__all__ = ["ENGINES", "FRAMINGS", "MODES", "NETWORKS", "PIPELINE_PREFIX", "AuditEntry", "ModelAlias",
           "ModelConfig", "ModelParameters", "Pipeline", "PipelineStep", "RunTarget", "Server",
           "ServerCheck", "parse_model_ref"]

MODES = ("oneshot", "worker")
FRAMINGS = ("jsonl", "mer")
ENGINES = ("podman", "docker")  # container engines (servers of kind `container`)
NETWORKS = ("none", "host")  # a container model's network; `none` unless set


def parse_model_ref(ref: str) -> tuple[str, str | None]:
    """Split ``name@version`` into (name, version); version is None when absent."""
    name, sep, version = ref.partition("@")
    return name, (version if sep and version else None)


@dataclass(slots=True)
class Server:
    """Where models run. ``kind`` picks the executor (local, ssh or a plugin's kind)."""

    name: str
    kind: str = "local"
    host: str | None = None
    port: int | None = None
    user: str | None = None
    # A path to a private key file, never the key itself; None means agent/default keys.
    identity_file: str | None = None
    # A known_hosts file for this server; None means the settings' default.
    known_hosts: str | None = None
    max_runs: int = 4
    # kind `container`: the engine's CLI (one of ENGINES); None means podman.
    engine: str | None = None
    # kind `slurm`: where and as whom jobs go, and extra sbatch/srun arguments.
    partition: str | None = None
    account: str | None = None
    slurm_args: str | None = None
    enabled: bool = True
    id: UUID = field(default_factory=uuid4)
    row_version: int = 1
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(slots=True)
class ServerCheck:
    """Result of Executor.check: is the server reachable, and how fast."""

    server: str
    reachable: bool
    latency_ms: float | None = None
    host_key_known: bool | None = None  # None when not applicable (local)
    fingerprint: str | None = None
    message: str = ""


@dataclass(slots=True)
class ModelConfig:
    """The fixed ("schemafull") part of a model: how and where to run it."""

    name: str
    server: str  # the Server's name
    command: list[str]  # argv, never given to a shell
    version: str = "1"
    train_command: list[str] | None = None
    mode: str = "oneshot"  # one of MODES
    framing: str = "jsonl"  # one of FRAMINGS (worker mode only)
    workdir: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None  # seconds; None means no limit
    description: str = ""
    enabled: bool = True
    # A container model (a server of kind `container`): the image it runs, its limits
    # and its network (one of NETWORKS; None means none). ``command`` may then be empty:
    # the image's own entrypoint runs.
    image: str | None = None
    cpus: float | None = None
    memory: str | None = None  # as the engine takes it: 512m, 2g
    network: str | None = None
    id: UUID = field(default_factory=uuid4)
    # Optimistic locking: an update carries the row_version it read and fails on mismatch.
    row_version: int = 1
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(slots=True)
class ModelAlias:
    """``name@alias`` names one version of model ``name`` (``m@live`` -> ``m@3``): a stable
    name for "the version in production" that an admin moves from version to version."""

    name: str
    alias: str
    version: str
    updated_at: datetime | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.alias}"

    @property
    def target(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(slots=True)
class ModelParameters:
    """The variable ("schemaless") part of a model: one JSON document per model."""

    model_id: UUID
    values: dict[str, Any] = field(default_factory=dict)
    row_version: int = 1
    updated_at: datetime | None = None


@dataclass(slots=True)
class RunTarget:
    """What a run needs of a model, read in one round trip: the model, its server and
    its parameters."""

    model: ModelConfig
    server: Server
    parameters: dict[str, Any]


PIPELINE_PREFIX = "pipeline:"  # `run pipeline:NAME`; the model of a pipeline's own run row


@dataclass(slots=True)
class PipelineStep:
    """One step of a pipeline: a model reference as `run` takes it (``m``, ``m@2``,
    ``m@live``), resolved when the step runs, and how the previous step's result becomes
    this step's input: ``maps`` of (``result.PATH``, ``input.PATH``) pairs, applied in
    order; none means the whole result is the input."""

    model: str
    maps: list[tuple[str, str]] = field(default_factory=list)


@dataclass(slots=True)
class Pipeline:
    """A named, ordered list of steps; each step's result feeds the next."""

    name: str
    steps: list[PipelineStep]
    description: str = ""
    id: UUID = field(default_factory=uuid4)
    row_version: int = 1
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(slots=True)
class AuditEntry:
    """One live edit: who changed what, and the before/after (JSON-able) images."""

    actor: str
    action: str  # e.g. "model.update", "weights.set", "server.add"
    target: str  # e.g. "model echo@1", "weights echo@1/w", "server gpu1"
    before: Any = None
    after: Any = None
    id: UUID = field(default_factory=uuid4)
    at: datetime = field(default_factory=utcnow)
