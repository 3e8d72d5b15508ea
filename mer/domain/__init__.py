"""Plain dataclasses shared by every layer of mer.

No I/O and no third-party imports: the shell, the services, the DAL (mer/db) and the
executors (mer/execution) all speak in these types, so that a second storage backend or
another executor kind fits behind the same interfaces. Import them from here; they live
in catalog.py (servers, models, pipelines, audit), weights.py (weight vectors), runs.py
(requests, results, the access log's rows) and clock.py (``utcnow``).
"""

from __future__ import annotations

from mer.domain.catalog import (
    ENGINES,
    FRAMINGS,
    MODES,
    NETWORKS,
    PIPELINE_PREFIX,
    AuditEntry,
    ModelAlias,
    ModelConfig,
    ModelParameters,
    Pipeline,
    PipelineStep,
    RunTarget,
    Server,
    ServerCheck,
    parse_model_ref,
)
from mer.domain.clock import utcnow
from mer.domain.runs import (
    Artifact,
    ContainerSpec,
    JsonText,
    RunKind,
    RunRecord,
    RunRequest,
    RunResult,
    RunStatus,
    WorkerInfo,
    encode_request,
)
from mer.domain.weights import WeightRevision, to_vector, vector_sha256

__all__ = [
    "Artifact",
    "AuditEntry",
    "ContainerSpec",
    "ENGINES",
    "FRAMINGS",
    "JsonText",
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
    "encode_request",
    "parse_model_ref",
    "utcnow",
    "vector_sha256",
    "to_vector",
]
