"""The files of a container run: the scratch directory mounted into the container, and
what mer keeps of it when the model is done.

The contract of the open model-runner images: the run's input is mounted read-only at
``/data/input`` (``request.json``, the request mer also writes to stdin, plus the files
of ``run --input-file NAME=PATH``), the model writes its results to ``/data/output`` and
its logs to ``/data/log``. Afterwards ``/data/output/result.json`` is the run's result,
every other file there an artifact (name, size, sha256; kept under mer's data dir while
they fit the per-run cap), and each ``/data/log`` file is added to the run's stderr.

The scratch directory is a directory of mer's machine (next to the run's artifact
directory, so that a kept file is renamed, never copied) or of the remote host (made by
``mktemp``, filled and emptied through tar streams over the SSH connection). Its name
starts with ``mer-run-`` (``.mer-run-`` locally), which is all a reaper removes.

Blocking file I/O: callers run these functions off the event loop.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from mer.domain import Artifact, RunRequest, encode_request
from mer.errors import ExecutionError
from mer.execution.output import OutputKeeper

__all__ = ["NO_RESULT", "SCRATCH_PREFIX", "Collected", "Collector", "collect_local",
           "input_files", "make_local_scratch", "read_output_tar", "remove_local_scratch",
           "write_input_tar"]

RESULT = "result.json"
SCRATCH_PREFIX = "mer-run-"
CHUNK = 1 << 20
NO_RESULT: Any = object()  # result.json absent or not JSON: the stdout line decides


def input_files(request: RunRequest) -> list[tuple[str, Path]]:
    """The files of ``run --input-file NAME=PATH``, each a readable regular file of mer's
    machine; ExecutionError (one line) for a path that is missing or no file."""
    found = []
    for name, path in sorted(request.input_files.items()):
        p = Path(path).expanduser()
        if not p.exists():
            raise ExecutionError(f"cannot start {request.model}@{request.version}: input file "
                                 f"{name}={path} does not exist")
        if not p.is_file():
            raise ExecutionError(f"cannot start {request.model}@{request.version}: input file "
                                 f"{name}={path} is not a regular file")
        found.append((name, p))
    return found


def _request_bytes(request: RunRequest) -> bytes:
    return encode_request(request.payload)


def make_local_scratch(request: RunRequest, files: list[tuple[str, Path]]) -> Path:
    """Create the run's scratch directory on this machine with input/ (request.json and
    the input files, hard-linked when they can be), output/ and log/ (writable by any
    user the image runs as)."""
    ref = f"{request.model}@{request.version}"
    try:
        if request.output_dir:
            parent = Path(request.output_dir).parent
            parent.mkdir(parents=True, exist_ok=True)
            root = parent / f".{SCRATCH_PREFIX}{request.run_id}"
            root.mkdir()
        else:
            root = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX))
    except OSError as err:
        raise ExecutionError(f"cannot start {ref}: cannot make its scratch directory: "
                             f"{err.strerror or err}") from err
    try:
        root.chmod(0o755)
        (root / "input").mkdir(mode=0o755)
        for sub in ("output", "log"):
            (root / sub).mkdir()
            (root / sub).chmod(0o777)
        if request.mode != "worker":
            (root / "input" / "request.json").write_bytes(_request_bytes(request))
        for name, path in files:
            target = root / "input" / name
            try:
                os.link(path, target)
            except OSError:
                shutil.copyfile(path, target)
            target.chmod(0o644)
    except OSError as err:
        shutil.rmtree(root, ignore_errors=True)
        raise ExecutionError(f"cannot start {ref}: preparing /data/input failed: "
                             f"{err.strerror or err}") from err
    return root


def remove_local_scratch(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)


def write_input_tar(fh: IO[bytes], request: RunRequest, files: list[tuple[str, Path]]) -> None:
    """Stream /data/input as a tar archive (to a remote ``tar -x``)."""
    with tarfile.open(fileobj=fh, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        if request.mode != "worker":
            data = _request_bytes(request)
            info = tarfile.TarInfo("request.json")
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
        for name, path in files:
            info = tarfile.TarInfo(name)
            info.size, info.mode = path.stat().st_size, 0o644
            with path.open("rb") as src:
                tar.addfile(info, src)


def _safe(name: str) -> str | None:
    """A relative path without '..' (a hostile archive or a link never escapes)."""
    parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
    if not parts or parts[0] == "/" or ".." in parts:
        return None
    return "/".join(parts)


@dataclass
class Collected:
    result: Any = NO_RESULT
    artifacts: list[Artifact] = field(default_factory=list)
    logs: str = ""


class Collector:
    """Takes the files of /data/output and /data/log one at a time, in name order: the
    result, the artifacts (hashed; moved or written under ``output_dir`` while the run's
    kept bytes stay within ``cap``) and the logs (capped like stderr)."""

    def __init__(self, output_dir: str | None, cap: int, text_cap: int) -> None:
        self.output_dir = Path(output_dir) if output_dir else None
        self.room = cap
        self.text_cap = text_cap
        self.out = Collected()
        self._logs: list[str] = []

    def _keep(self, size: int) -> bool:
        if self.output_dir is None or size > self.room:
            return False
        self.room -= size
        return True

    def _target(self, name: str) -> Path:
        assert self.output_dir is not None
        target = self.output_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def _result(self, name: str, size: int, read: Any) -> bool:
        """True when ``name`` is a parseable result.json (then it is the result)."""
        if name != RESULT or size > self.text_cap:
            return False
        data = read()
        try:
            self.out.result = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            return False  # kept as an artifact: nothing the model wrote is lost
        return True

    def output_path(self, name: str, path: Path) -> None:
        """A file of a local /data/output: renamed into place when kept."""
        size = path.stat().st_size
        if self._result(name, size, path.read_bytes):
            return
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
        kept = self._keep(size)
        if kept:
            target = self._target(name)
            try:
                os.replace(path, target)
            except OSError:
                shutil.copyfile(path, target)
        self.out.artifacts.append(Artifact(name, size, digest.hexdigest(), kept))

    def output_stream(self, name: str, size: int, fh: IO[bytes]) -> None:
        """A file of a remote /data/output, read from the archive: written when kept."""
        if name == RESULT and size <= self.text_cap:
            data = fh.read()
            if self._result(name, size, lambda: data):
                return
            chunks: Iterator[bytes] = iter([data])
        else:
            chunks = iter(lambda: fh.read(CHUNK), b"")
        digest = hashlib.sha256()
        kept = self._keep(size)
        with (self._target(name).open("wb") if kept else open(os.devnull, "wb")) as dst:
            for chunk in chunks:
                digest.update(chunk)
                dst.write(chunk)
        self.out.artifacts.append(Artifact(name, size, digest.hexdigest(), kept))

    def log(self, name: str, fh: IO[bytes]) -> None:
        keep = OutputKeeper(self.text_cap)
        while chunk := fh.read(CHUNK):
            keep.add(chunk)
        if keep.total:
            text = keep.text()
            self._logs.append(f"--- /data/log/{name} ---\n{text}{'' if text.endswith(chr(10)) else chr(10)}")

    def done(self) -> Collected:
        self.out.logs = "".join(self._logs)
        return self.out


def _walk(top: Path) -> list[tuple[str, Path]]:
    """Regular files under ``top`` (links and devices are not followed), by name."""
    found = []
    for dirpath, _dirs, names in os.walk(top):
        for n in names:
            path = Path(dirpath) / n
            if path.is_file() and not path.is_symlink():
                found.append((path.relative_to(top).as_posix(), path))
    return sorted(found)


def collect_local(root: Path, output_dir: str | None, cap: int, text_cap: int) -> Collected:
    collector = Collector(output_dir, cap, text_cap)
    for name, path in _walk(root / "output"):
        collector.output_path(name, path)
    for name, path in _walk(root / "log"):
        with path.open("rb") as fh:
            collector.log(name, fh)
    return collector.done()


def read_output_tar(fh: IO[bytes], output_dir: str | None, cap: int, text_cap: int) -> Collected:
    """Read ``tar -cf - output log`` of a remote scratch directory. Files come in the
    remote tar's order, which decides which of them fit the cap."""
    collector = Collector(output_dir, cap, text_cap)
    with tarfile.open(fileobj=fh, mode="r|") as tar:
        for member in tar:
            name = _safe(member.name)
            if name is None or not member.isfile():
                continue
            top, _, rest = name.partition("/")
            src = tar.extractfile(member)
            if src is None or not rest:
                continue
            if top == "output":
                collector.output_stream(rest, member.size, src)
            elif top == "log":
                collector.log(rest, src)
    collector.out.artifacts.sort(key=lambda a: a.name)
    return collector.done()
