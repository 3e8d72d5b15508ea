"""The run journal: a run's final record, kept on local disk while the database is away.

When a run ends and its final write cannot reach the database (after the run log's
retries), the whole record is appended to an append-only file under mer's data dir,
one JSON line, fsync'd before mer says so. The next connection that succeeds, or the
next start, replays the file: each record completes its row (or writes it whole, if even
its start never arrived), and a row that already has its ending is left as it is, so a
replay repeated after a crash changes nothing. Slurm's accounting queue works the same way.

Several mer processes may share the file: appends hold a shared lock, a replay an
exclusive one, and a replay empties the file only after every record in it was written.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import fields
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from uuid import UUID

from mer.domain import Artifact, RunKind, RunRecord, RunStatus

__all__ = ["RunJournal", "record_from_json", "record_to_json"]

_TIMES = ("started_at", "finished_at")


def record_to_json(record: RunRecord) -> str:
    out: dict[str, Any] = {}
    for f in fields(record):
        value = getattr(record, f.name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, UUID):
            value = str(value)
        elif f.name == "artifacts":
            value = [a.image() for a in value]
        out[f.name] = value
    # NOTE: surrogates (a model's result may hold them) survive a JSON round trip as
    # escapes; the run log makes them storable when the record is written.
    return json.dumps(out, separators=(",", ":"), default=str)


def record_from_json(line: str) -> RunRecord:
    data = json.loads(line)
    for name in _TIMES:
        if data.get(name) is not None:
            data[name] = datetime.fromisoformat(data[name])
    data["id"] = UUID(data["id"])
    if data.get("model_id") is not None:
        data["model_id"] = UUID(data["model_id"])
    data["status"], data["kind"] = RunStatus(data["status"]), RunKind(data["kind"])
    data["artifacts"] = [Artifact(**a) for a in data.get("artifacts") or ()]
    return RunRecord(**data)


class RunJournal:
    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def _locked(self, mode: str, lock: int) -> Iterator[IO[bytes]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, mode) as f:
            fcntl.flock(f, lock)
            try:
                yield f
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def append(self, record: RunRecord) -> None:
        """Add ``record``; it is on disk when this returns. Raises OSError."""
        with self._locked("ab", fcntl.LOCK_SH) as f:
            f.write(record_to_json(record).encode() + b"\n")
            f.flush()
            os.fsync(f.fileno())

    def pending(self) -> bool:
        try:
            return self.path.stat().st_size > 0
        except OSError:
            return False

    async def replay(self, write: Callable[[RunRecord], Awaitable[None]]) -> int:
        """Write every journaled record with ``write``, then empty the journal; returns
        how many were replayed. If a write fails, the journal is kept whole (a later
        replay writes again what was written: ``write`` must be idempotent)."""
        if not self.pending():
            return 0
        with self._locked("r+b", fcntl.LOCK_EX) as f:
            lines = [line for line in f.read().decode("utf-8", "replace").splitlines() if line]
            records = []
            for line in lines:
                try:
                    records.append(record_from_json(line))
                except (ValueError, KeyError, TypeError):
                    continue  # a line torn by a crash mid-append was never reported kept
            for record in records:
                await write(record)
            f.seek(0)
            f.truncate()
            f.flush()
            os.fsync(f.fileno())
        return len(records)
