"""Plain dataclasses shared by every layer of mer.

No I/O and no third-party imports: the shell, the services, the DAL (mer/db) and the
executors (mer/execution) all speak in these types, so that a second storage backend or
another executor kind fits behind the same interfaces.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

__all__ = [
    "Artifact",
    "AuditEntry",
    "ContainerSpec",
    "ENGINES",
    "FRAMINGS",
    "MODES",
    "NETWORKS",
    "ModelAlias",
    "ModelConfig",
    "PIPELINE_PREFIX",
    "Pipeline",
    "PipelineStep",
    "ModelParameters",
    "RunKind",
    "RunRecord",
    "RunRequest",
    "RunResult",
    "RunStatus",
    "RunTarget",
    "Server",
    "ServerCheck",
    "WeightRevision",
    "WorkerInfo",
    "parse_model_ref",
    "utcnow",
    "vector_sha256",
    "to_vector",
]

MODES = ("oneshot", "worker")
FRAMINGS = ("jsonl", "mer")
ENGINES = ("podman", "docker")  # container engines (servers of kind `container`)
NETWORKS = ("none", "host")  # a container model's network; `none` unless set


def utcnow() -> datetime:
    """Timezone-aware UTC now; every timestamp in mer is aware and in UTC."""
    return datetime.now(UTC)


def parse_model_ref(ref: str) -> tuple[str, str | None]:
    """Split ``name@version`` into (name, version); version is None when absent."""
    name, sep, version = ref.partition("@")
    return name, (version if sep and version else None)


class RunStatus(enum.StrEnum):
    QUEUED = "queued"  # submitted to a scheduler (sbatch), not started yet
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    LOST = "lost"


class RunKind(enum.StrEnum):
    RUN = "run"
    TRAIN = "train"


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


def to_vector(values: Iterable[object] | array) -> array:
    """Coerce values to a float64 array; raises ValueError on NaN/inf or non-numbers."""
    if isinstance(values, array) and values.typecode == "d":
        vec = values
    else:
        vec = array("d")
        for i, v in enumerate(values):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"element {i} is {type(v).__name__} {v!r}, not a number")
            vec.append(float(v))
    # NOTE: a plain sum is one C-level pass and is finite iff every element is (barring
    # overflow), so the common all-finite case never runs the Python-level scan.
    if not math.isfinite(sum(vec)):
        for i, x in enumerate(vec):
            if not math.isfinite(x):
                raise ValueError(f"element {i} is {x!r}; weights must be finite numbers")
    return vec


def vector_sha256(values: array) -> str:
    """sha256 of the vector's little-endian float64 bytes (the stored form)."""
    return hashlib.sha256(values.tobytes()).hexdigest()


@dataclass(slots=True)
class RunTarget:
    """What a run needs of a model, read in one round trip: the model, its server and
    its parameters."""

    model: ModelConfig
    server: Server
    parameters: dict[str, Any]


@dataclass(slots=True)
class WeightRevision:
    """One immutable revision of a named float vector of a model."""

    model_id: UUID
    name: str
    revision: int
    values: array  # array('d'), float64
    sha256: str
    author: str
    note: str = ""
    id: UUID = field(default_factory=uuid4)
    created_at: datetime | None = None
    # Kept apart from values so a history listing can carry lengths without the values.
    length: int = -1
    run_id: UUID | None = None  # the training run whose result this revision is, if any

    def __post_init__(self) -> None:
        if self.length < 0:
            self.length = len(self.values)


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    """How a container model runs: its image, limits and network."""

    image: str
    cpus: float | None = None
    memory: str | None = None
    network: str = "none"


@dataclass(slots=True)
class Artifact:
    """A file a container model left in /data/output: its name there (a relative path),
    size and sha256. ``kept``: stored under mer's data dir (False: it did not fit the
    per-run cap, MER_ARTIFACT_CAP; only its size and digest are recorded)."""

    name: str
    size: int
    sha256: str
    kept: bool = True

    def image(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "sha256": self.sha256, "kept": self.kept}


@dataclass(slots=True)
class RunRequest:
    """What an executor needs to run a model once; built by the services."""

    model: str
    version: str
    command: list[str]  # argv, quoted for the remote shell by the ssh executor
    payload: dict[str, Any]  # the JSON request: model, version, parameters, weights, input
    # (sent with encode_request: the weights come pre-encoded, as JsonText)
    mode: str = "oneshot"
    framing: str = "jsonl"
    workdir: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    timeout: float | None = None
    run_id: UUID = field(default_factory=uuid4)
    # Container runs only: the image and its limits, the files to put into /data/input
    # (name -> a path on mer's machine), the local directory that receives the files of
    # /data/output (None: only listed, not kept) and how many bytes of them to keep.
    container: ContainerSpec | None = None
    input_files: Mapping[str, str] = field(default_factory=dict)
    output_dir: str | None = None
    artifact_cap: int = 256 << 20

    @property
    def worker_key(self) -> tuple[str, str, tuple[str, ...]]:
        """Workers are shared by model, version and the exact command line (and image)."""
        image = (f"image={self.container.image}",) if self.container is not None else ()
        return (self.model, self.version, tuple(self.command) + image)


class JsonText(str):
    """JSON encoded once and reused, such as a cached plan's weight vectors (a million
    weights are 20 MB of JSON and ~0.5 s to encode): ``encode_request`` splices it in."""


def encode_request(payload: Mapping[str, Any]) -> bytes:
    """A model's request as one JSON line; JsonText values go in as they are."""
    encoded = {k: v for k, v in payload.items() if isinstance(v, JsonText)}
    if not encoded:
        return (json.dumps(payload) + "\n").encode()
    plain = json.dumps({k: v for k, v in payload.items() if k not in encoded})[1:-1]
    parts = [plain] if plain else []
    parts += [f"{json.dumps(k)}: {v}" for k, v in encoded.items()]
    return ("{" + ", ".join(parts) + "}\n").encode()


@dataclass(slots=True)
class RunResult:
    """How a run ended, as seen by the executor."""

    status: RunStatus
    exit_code: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    stdout: str = ""  # kept output, capped (head and tail with a truncation note)
    stderr: str = ""
    result: Any = None  # the model's parsed JSON result, if it printed one
    error: str | None = None
    artifacts: list[Artifact] = field(default_factory=list)  # container runs' output files
    job_id: str | None = None  # the Slurm job that ran it (servers of kind slurm)

    @property
    def ok(self) -> bool:
        return self.status is RunStatus.SUCCEEDED


@dataclass(slots=True)
class RunRecord:
    """One row of the access log: written when a run starts, completed when it ends."""

    model: str
    version: str
    server: str
    os_user: str
    kind: RunKind = RunKind.RUN
    model_id: UUID | None = None
    weight_revisions: dict[str, int] = field(default_factory=dict)
    status: RunStatus = RunStatus.RUNNING
    exit_code: int | None = None
    started_at: datetime = field(default_factory=utcnow)
    finished_at: datetime | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    stdout: str = ""
    stderr: str = ""
    result: Any = None
    error: str | None = None
    artifacts: list[Artifact] = field(default_factory=list)
    id: UUID = field(default_factory=uuid4)
    # Who runs it while it runs (mer/services/ownership.py): a row whose owner is gone is
    # finished `lost` and the model's process group (on its server) killed.
    owner_host: str | None = None
    owner_pid: int | None = None
    owner_start: str | None = None  # "<boot id>:<start time>": the pid's own identity
    process_group: int | None = None
    # Lineage: the Slurm job that ran it, the batch it belongs to, its parent run (a
    # pipeline step's pipeline), the alias it was called by (``live`` of ``m@live``), and
    # a snapshot of what makes it reproducible (config, parameters, weights, request).
    job_id: str | None = None
    batch_id: UUID | None = None
    parent_id: UUID | None = None
    alias: str | None = None
    snapshot: dict[str, Any] | None = None

    @property
    def duration_ms(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds() * 1000.0


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
class WorkerInfo:
    """A live worker process kept by an executor."""

    server: str
    model: str
    version: str
    pid: int | None
    started_at: datetime
    requests: int = 0

