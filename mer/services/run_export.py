"""`runs export`: a run as one zip file that holds all it takes to rerun it elsewhere.

    metadata.json   the run (status, exit code, timings, ...), its snapshot
                    (mer/services/run_snapshot.py) and, per weight vector, its file, revision
                    and two sha256: of the vector (as mer stores it) and of the file
    request.json    the JSON request the model got (its weights are the .npy files)
    result.json     the model's result (null when it printed none)
    stdout.txt, stderr.txt   the output the run kept
    weights/NAME.npy         each vector at the revision the run used (not today's)

The zip is written to a temporary file beside the destination and renamed, so there is
never half an export. ``read_export`` checks every weights file against both digests
before anything of it is used: an altered file is refused with one line naming it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from mer.domain import RunRecord, WeightRevision, vector_sha256
from mer.errors import NotFound, UsageError
from mer.services.context import ServiceContext
from mer.services.npy_image import npy_bytes, npy_vector
from mer.services.runs import get_run

__all__ = ["FORMAT", "Export", "export_run", "read_export", "recorded_snapshot", "recorded_weights"]

FORMAT = "mer-run-export/1"
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,100}\Z")


@dataclass(frozen=True, slots=True)
class Export:
    """What an export holds: its metadata (``run``, ``snapshot``, ``weights``), the
    recorded result and the weight revisions, their digests checked."""

    path: Path
    metadata: dict[str, Any]
    result: Any
    weights: list[WeightRevision]
    files: list[str]

    @property
    def snapshot(self) -> dict[str, Any]:
        snapshot: dict[str, Any] = self.metadata["snapshot"]
        return snapshot


def recorded_snapshot(record: RunRecord) -> dict[str, Any]:
    """The run's snapshot; UsageError for a run recorded before mer kept them."""
    if not record.snapshot:
        raise UsageError(f"run {str(record.id)[:8]} has no snapshot (it ran before mer recorded "
                         f"them, or it is a pipeline's run: replay its steps), so it cannot be "
                         f"exported or replayed")
    return record.snapshot


async def recorded_weights(ctx: ServiceContext, record: RunRecord, hint: str = "") -> list[WeightRevision]:
    """The weight revisions the run used, read by revision number and checked against the
    sha256 the run recorded. Raises NotFound (ending in ``hint``) when one is gone (its
    vector was removed)."""
    snapshot = recorded_snapshot(record)
    short = str(record.id)[:8]
    wanted: Mapping[str, Any] = snapshot.get("weights") or {}
    model_id = record.model_id or UUID(snapshot["model"]["id"])
    found: list[WeightRevision] = []
    async with ctx.uow() as uow:
        for name, want in wanted.items():
            rev = await uow.weights.get(model_id, name, int(want["revision"]))
            # NOTE: a vector removed and added again numbers its revisions from 1 anew, so a
            # revision number alone could name other values: the digest decides.
            if rev is None or rev.sha256 != want["sha256"] or vector_sha256(rev.values) != want["sha256"]:
                raise NotFound(f"run {short} used weights '{name}' revision {want['revision']}, which "
                               f"is no longer stored (the vector was removed since){hint}")
            found.append(rev)
    return found


def _iso(value: Any) -> Any:
    return value.isoformat() if value is not None else None


def _run_image(r: RunRecord) -> dict[str, Any]:
    return {
        "id": str(r.id), "model": r.model, "version": r.version, "kind": str(r.kind),
        "server": r.server, "os_user": r.os_user, "status": str(r.status), "exit_code": r.exit_code,
        "error": r.error, "started_at": _iso(r.started_at), "finished_at": _iso(r.finished_at),
        "duration_ms": r.duration_ms, "bytes_in": r.bytes_in, "bytes_out": r.bytes_out,
        "weight_revisions": r.weight_revisions, "artifacts": [a.image() for a in r.artifacts],
        "job_id": r.job_id, "alias": r.alias,
        "batch_id": None if r.batch_id is None else str(r.batch_id),
        "parent_id": None if r.parent_id is None else str(r.parent_id),
    }


def _file_name(name: str, taken: set[str]) -> str:
    """``weights/NAME.npy``, or a numbered name when NAME is no plain file name."""
    stem = name if _PLAIN_NAME.match(name) else f"vector-{len(taken) + 1}"
    while f"weights/{stem}.npy" in taken:
        stem += "_"
    return f"weights/{stem}.npy"


def _members(record: RunRecord, weights: list[WeightRevision]) -> dict[str, bytes]:
    snapshot = recorded_snapshot(record)
    files: dict[str, bytes] = {}
    listed: dict[str, Any] = {}
    for w in weights:
        member = _file_name(w.name, set(files))
        files[member] = npy_bytes(w.values)
        listed[w.name] = {"file": member, "revision": w.revision, "length": len(w.values),
                          "sha256": w.sha256, "file_sha256": hashlib.sha256(files[member]).hexdigest()}
    metadata = {"format": FORMAT, "run": _run_image(record), "snapshot": snapshot, "weights": listed}

    def doc(value: Any) -> bytes:
        return json.dumps(value, indent=2, ensure_ascii=False).encode() + b"\n"

    return {"metadata.json": doc(metadata), "request.json": doc(snapshot.get("request")),
            "result.json": doc(record.result), "stdout.txt": record.stdout.encode(),
            "stderr.txt": record.stderr.encode(), **files}


def _write_zip(dest: Path, members: dict[str, bytes]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w") as zf:
            for name, data in members.items():
                # float64 values barely compress: stored, not deflated.
                method = zipfile.ZIP_STORED if name.endswith(".npy") else zipfile.ZIP_DEFLATED
                zf.writestr(name, data, compress_type=method)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


async def export_run(ctx: ServiceContext, run_id: str, to: Path) -> tuple[RunRecord, Path, list[str]]:
    """Write run ``run_id`` to the zip ``to`` (a file, or a directory to put
    ``run-ID.zip`` in); returns the run, the path written and its members. Raises
    RunNotFound, UsageError (no snapshot, a bad --to) and NotFound (a weight revision
    the run used is gone)."""
    record = await get_run(ctx, run_id)
    weights = await recorded_weights(ctx, record)
    members = _members(record, weights)
    dest = to / f"run-{str(record.id)[:8]}.zip" if to.is_dir() else to
    if not dest.parent.is_dir():
        raise UsageError(f"--to {to}: directory {dest.parent} does not exist")
    try:
        await asyncio.to_thread(_write_zip, dest, members)
    except OSError as err:
        raise UsageError(f"cannot write --to {dest}: {err.strerror or err}") from err
    return record, dest, list(members)


# -- reading an export back -------------------------------------------------------------

def read_export(path: Path) -> Export:
    """The export at ``path``, every weights file checked against its two sha256.
    Raises UsageError naming the file (and the member) when anything is off."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            metadata = _json(zf, names, "metadata.json", path)
            if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
                raise UsageError(f"{path}: metadata.json is not of a mer run export ({FORMAT})")
            snapshot, listed = metadata.get("snapshot"), metadata.get("weights")
            if not isinstance(snapshot, dict) or not isinstance(listed, dict):
                raise UsageError(f"{path}: metadata.json has no snapshot of the run")
            result = _json(zf, names, "result.json", path)
            model_id = _model_id(snapshot, path)
            weights = [_vector(zf, names, path, model_id, name, want, listed.get(name))
                       for name, want in (snapshot.get("weights") or {}).items()]
    except (zipfile.BadZipFile, EOFError) as err:
        raise UsageError(f"{path}: not a zip file ({err})") from None
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror or err}") from None
    return Export(path=path, metadata=metadata, result=result, weights=weights, files=sorted(names))


def _json(zf: zipfile.ZipFile, names: set[str], member: str, path: Path) -> Any:
    if member not in names:
        raise UsageError(f"{path}: no {member}; not a mer run export")
    try:
        return json.loads(zf.read(member))
    except (ValueError, UnicodeDecodeError) as err:
        raise UsageError(f"{path}: {member} is not valid JSON ({err})") from None


def _model_id(snapshot: dict[str, Any], path: Path) -> UUID:
    try:
        return UUID(str(snapshot["model"]["id"]))
    except (KeyError, TypeError, ValueError):
        raise UsageError(f"{path}: metadata.json names no model id") from None


def _vector(zf: zipfile.ZipFile, names: set[str], path: Path, model_id: UUID, name: str, want: Any,
            entry: Any) -> WeightRevision:
    """Weights ``name`` of the export: its file's sha256 as listed, its values' sha256 as
    the run recorded."""
    if not isinstance(want, dict) or not isinstance(entry, dict) or entry.get("file") not in names:
        raise UsageError(f"{path}: weights '{name}' of the run have no file in the export")
    member = str(entry["file"])
    raw = zf.read(member)
    digest = hashlib.sha256(raw).hexdigest()
    if digest != entry.get("file_sha256"):
        raise UsageError(f"{path}: {member} was altered: its sha256 is {digest[:12]}..., metadata.json "
                         f"says {str(entry.get('file_sha256'))[:12]}...; nothing was run")
    values = npy_vector(raw, f"{path}: {member}")
    if vector_sha256(values) != want.get("sha256") or entry.get("sha256") != want.get("sha256"):
        raise UsageError(f"{path}: {member} does not hold the values the run used (their sha256 "
                         f"differs from the run's record); nothing was run")
    try:
        revision = int(want["revision"])
    except (KeyError, TypeError, ValueError):
        raise UsageError(f"{path}: weights '{name}': no revision recorded") from None
    return WeightRevision(model_id=model_id, name=name, revision=revision, values=values,
                          sha256=str(want["sha256"]), author="export")
