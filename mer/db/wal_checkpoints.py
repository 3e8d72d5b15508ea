"""SQLite's WAL checkpoints, made on a thread of their own instead of inside a run's write.

In WAL mode the commit that takes the log past 1,000 pages copies the log back into the
database file and syncs it, on the committing connection's thread. For the run log that
thread is the event loop's, between a model's start and its output: the checkpoints came
to ~70 us of every run here (benchmarks/bench_shell.py), though one run in a hundred paid
them. So the run log's own connection does not checkpoint (``wal_autocheckpoint=0``), and
every ``EVERY`` of its writes a passive checkpoint runs on a thread, on a connection of
its own: the same work SQLite would do, while the loop goes on. A passive checkpoint
never waits for a writer or a reader, and the engine's connections (and other mer
processes) keep checkpointing as SQLite does by default.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

__all__ = ["BackgroundCheckpoints"]

log = logging.getLogger(__name__)

EVERY = 250  # writes; a run log write adds ~4 pages to the log, SQLite's own mark is 1,000


class BackgroundCheckpoints:
    """Counts a connection's writes and checkpoints the database on a thread every
    ``every`` of them; at most one checkpoint at a time."""

    def __init__(self, path: str, every: int | None = None) -> None:
        self.path = path
        self.every = EVERY if every is None else every
        self._writes = 0
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None  # used by one checkpoint thread at a time

    def wrote(self) -> None:
        self._writes += 1
        if self._writes < self.every or (self._thread is not None and self._thread.is_alive()):
            return
        self._writes = 0
        self._thread = threading.Thread(target=self._checkpoint, name="mer-checkpoint", daemon=True)
        self._thread.start()

    def _checkpoint(self) -> None:
        try:
            if self._conn is None:
                self._conn = sqlite3.connect(self.path, timeout=1.0, isolation_level=None,
                                             check_same_thread=False)
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error:  # as an automatic checkpoint's: the next one does the work
            log.debug("a background checkpoint of %s failed", self.path, exc_info=True)

    def close(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
