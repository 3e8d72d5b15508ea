"""A container run's artifacts: the files its model left in /data/output.

The executor hashes them and keeps those that fit the per-run cap (MER_ARTIFACT_CAP) in
the run's directory of the store, ``MER_DATA_DIR/artifacts/<run id>/``; the run's record
lists every one of them (name, size, sha256, kept). ``save_artifact`` copies one out,
checking on the way that it is still the file the run left.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from uuid import UUID

from mer.domain import Artifact
from mer.errors import NotFound, StorageError, UsageError
from mer.services.context import ServiceContext
from mer.services.runs import get_run

__all__ = ["ArtifactStore", "save_artifact"]

CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class ArtifactStore:
    root: Path  # MER_DATA_DIR/artifacts
    cap: int  # bytes kept per run

    def run_dir(self, run_id: UUID) -> Path:
        return self.root / str(run_id)

    def forget_scratch(self, run_id: UUID) -> None:
        """Remove what a container run of a mer that died left of its scratch directory
        (the container executor makes it next to the run's directory, as
        ``.mer-run-<run id>``: mer/execution/container_files.py)."""
        shutil.rmtree(self.root / f".mer-run-{run_id}", ignore_errors=True)


def _copy(src: Path, dest: Path, expect: str) -> None:
    digest = hashlib.sha256()
    with src.open("rb") as fin, dest.open("wb") as fout:
        while chunk := fin.read(CHUNK):
            digest.update(chunk)
            fout.write(chunk)
    if digest.hexdigest() != expect:
        dest.unlink(missing_ok=True)
        raise StorageError(f"{src} changed since the run (its sha256 is no longer {expect[:12]}...); "
                           f"nothing was copied")


async def save_artifact(ctx: ServiceContext, run_id: str, name: str, to: Path) -> tuple[Artifact, Path]:
    """Copy artifact ``name`` of a run to ``to`` (a file, or a directory to put it in);
    returns the artifact and the path written. Raises RunNotFound, NotFound (no such
    artifact), UsageError (not kept; a bad --to) and StorageError (gone or changed)."""
    record = await get_run(ctx, run_id)
    short = str(record.id)[:8]
    found = next((a for a in record.artifacts if a.name == name), None)
    if found is None:
        names = ", ".join(a.name for a in record.artifacts)
        raise NotFound(f"run {short} has no artifact '{name}'; "
                       + (f"it has: {names}" if names else "it left none"))
    if not found.kept:
        raise UsageError(f"artifact '{name}' of run {short} was not kept: its {found.size} bytes "
                         f"did not fit MER_ARTIFACT_CAP; only its size and sha256 are recorded")
    parts = PurePosixPath(name).parts
    if ctx.artifacts is None or not parts or parts[0] == "/" or ".." in parts:
        raise StorageError(f"artifact '{name}' of run {short} is not in an artifact store here")
    src = ctx.artifacts.run_dir(record.id).joinpath(*parts)
    if not src.is_file():
        raise StorageError(f"artifact '{name}' of run {short} is no longer in {src.parent}")
    dest = to / parts[-1] if to.is_dir() else to
    if dest.exists() and dest.resolve() == src.resolve():
        raise UsageError(f"--to {to} is the stored artifact itself")
    try:
        await asyncio.to_thread(_copy, src, dest, found.sha256)
    except OSError as err:
        raise UsageError(f"cannot write --to {dest}: {err.strerror or err}") from err
    return found, dest
