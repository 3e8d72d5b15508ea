"""A spinner with the elapsed time (``⠹ 1.2 s``) on a terminal while a run is silent, so
a person sees that mer is waiting on the model, not stuck.

It draws from its own small thread, so it turns while the main thread waits on the
loop. ``stop`` clears its line and returns only once the spinner can no longer draw: a
model's output written after ``stop`` is never mixed with a frame.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import TextIO

__all__ = ["Spinner"]

FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
INTERVAL = 0.1  # seconds between frames; the first after one interval (no flicker for fast runs)
_CLEAR = "\r\x1b[K"  # back to the line's start, erase to its end


class Spinner:
    """``with Spinner(sys.stderr):`` spins until the block ends or ``stop`` is called."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._stopped = threading.Event()
        self._lock = threading.Lock()  # a frame is drawn whole, or stop waits for it
        self._drawn = False
        self._start = time.monotonic()
        self._thread = threading.Thread(target=self._spin, name="mer-spinner", daemon=True)

    def start(self) -> Spinner:
        self._start = time.monotonic()
        self._thread.start()
        return self

    def __enter__(self) -> Spinner:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _spin(self) -> None:
        frame = 0
        while not self._stopped.wait(INTERVAL):
            with self._lock:
                if self._stopped.is_set():
                    return
                elapsed = time.monotonic() - self._start
                self._write(f"\r{FRAMES[frame % len(FRAMES)]} {elapsed:.1f} s")
                self._drawn = True
            frame += 1

    def stop(self) -> None:
        """Clear the spinner for good (cheap when already stopped: called per chunk)."""
        if self._stopped.is_set():
            return
        with self._lock:
            self._stopped.set()
            if self._drawn:
                self._write(_CLEAR)

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):  # the terminal went away: nothing to show it on
            self._stopped.set()
