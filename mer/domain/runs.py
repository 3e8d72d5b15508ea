"""A run as the services and the executors see it: the request (and its JSON encoding),
the result, the row of the access log, and a live worker that serves runs. No I/O."""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from mer.domain.clock import utcnow

__all__ = ["Artifact", "ContainerSpec", "JsonText", "RunKind", "RunRecord", "RunRequest", "RunResult",
           "RunStatus", "WorkerInfo", "encode_request"]


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


@dataclass(slots=True)
class WorkerInfo:
    """A live worker process kept by an executor."""

    server: str
    model: str
    version: str
    pid: int | None
    started_at: datetime
    requests: int = 0
