"""Session channels opened one ahead, so a run's channel is ready when the run starts.

Opening a session channel is a round trip to the server (0.45 ms on loopback, a network
round trip elsewhere) that every run paid before its command could even be sent: about
a tenth of a pooled run of /bin/true (benchmarks/bench_exec.py). A connection keeps one
session channel open ahead; the next run (or kill, or ping) takes it, and another is
opened in the background once the run's request went out: by the event loop
(``begin``/``offer``, ssh_start.py) or by the pool thread that started the run
(``refill``). The loop takes a spare only when one is open (``take_ready``); a thread
may wait for one being opened. OpenSSH starts nothing on
the server for a session until a command is asked for, so a spare costs a channel
number and nothing else.

A spare found closed (its connection dropped) is discarded and a channel is opened as
before. sshd's MaxSessions (default 10) counts the spare: a spare it refuses is simply
not kept, and a taker that finds the spare being opened waits for it rather than
racing it for the last session, so a kill's channel never loses to a spare.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
from collections.abc import Callable

import paramiko

from mer.execution.process import ConnectionLost

__all__ = ["SpareChannels"]


class SpareChannels:
    """One session channel kept open ahead for a connection. Blocking; thread-safe."""

    def __init__(self, open_session: Callable[[], paramiko.Channel], alive: Callable[[], bool],
                 pool: concurrent.futures.Executor) -> None:
        self._open = open_session
        self._alive = alive
        self._pool = pool
        self._lock = threading.Lock()
        self._spare: paramiko.Channel | None = None
        self._opening: concurrent.futures.Future[None] | None = None
        self._closed = False

    def take(self) -> paramiko.Channel:
        """A session channel: the spare when there is one, else a new one. Raises
        ConnectionLost."""
        with self._lock:
            chan, self._spare = self._spare, None
            opening = self._opening if chan is None else None
        if opening is not None:
            with contextlib.suppress(Exception):
                opening.result()
            with self._lock:
                chan, self._spare = self._spare, None
        if chan is not None and (chan.closed or not self._alive()):
            chan.close()
            chan = None
        return chan if chan is not None else self._open()

    def take_ready(self) -> paramiko.Channel | None:
        """The spare if one is open now, without waiting (the event loop's taker)."""
        with self._lock:
            chan, self._spare = self._spare, None
        if chan is not None and (chan.closed or not self._alive()):
            chan.close()
            return None
        return chan

    def begin(self) -> concurrent.futures.Future[None] | None:
        """Claim the opening of the next spare for a caller that opens it itself (the
        event loop: ssh_start.py) and hands it to ``offer``; None: no spare is wanted."""
        with self._lock:
            if self._closed or self._spare is not None or self._opening is not None:
                return None
            opening: concurrent.futures.Future[None] = concurrent.futures.Future()
            self._opening = opening
            return opening

    def offer(self, chan: paramiko.Channel | None, opening: concurrent.futures.Future[None]) -> None:
        """The spare opened for ``begin`` (None: it could not be)."""
        with self._lock:
            self._opening = None
            keep = chan is not None and not self._closed and self._spare is None
            if keep:
                self._spare = chan
        if chan is not None and not keep:
            chan.close()
        opening.set_result(None)  # for a taker that waited for it

    def refill(self, here: bool = False) -> None:
        """Open the next spare, unless there is one: on the pool, or ``here`` on this
        thread (a pool thread whose run just started). Called once a run's request went
        out: earlier, it would contend with the run's own start."""
        opening = self.begin()
        if opening is None:
            return
        if here:
            self._fill(opening)
            return
        try:
            self._pool.submit(self._fill, opening)
        except BaseException:  # no taker may wait for a spare that never comes
            self.offer(None, opening)
            raise

    def _fill(self, opening: concurrent.futures.Future[None]) -> None:
        chan: paramiko.Channel | None = None
        try:
            chan = self._open()
        except ConnectionLost:
            pass  # a connection gone or a session refused: no spare this time
        finally:
            self.offer(chan, opening)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            chan, self._spare = self._spare, None
        if chan is not None:
            chan.close()
