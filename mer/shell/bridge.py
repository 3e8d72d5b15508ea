"""One asyncio event loop for the life of the process, in a daemon thread.

cmd2 is synchronous; the DAL and the executors are asyncio. Shell commands submit
coroutines here and wait. A KeyboardInterrupt (Ctrl-C) or SystemExit (SIGTERM) while
waiting cancels the coroutine, waits for its cleanup (the model process killed, the run
recorded as cancelled), then propagates. Never asyncio.run per command: the connection
pool belongs to this one loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["AsyncBridge"]

T = TypeVar("T")
CLEANUP_WAIT = 10.0


class AsyncBridge:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="mer-loop", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        future = self.submit(coro)
        try:
            return future.result()
        except BaseException as exc:
            if isinstance(exc, (KeyboardInterrupt, SystemExit)) and not future.done():
                # The concurrent future reports cancelled at once; the task on the loop
                # still has to run its finally blocks (kill the model, finish the
                # access-log row): wait for them before the interrupt goes on.
                future.cancel()
                self._settle(CLEANUP_WAIT)
            raise

    def _settle(self, timeout: float) -> None:
        """Wait until tasks shielded from the cancellation (the run record) are done."""
        async def pending() -> None:
            me = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not me]
            if tasks:
                await asyncio.wait(tasks, timeout=timeout)

        # NOTE: waiting on *all* tasks is fine here: between commands nothing else runs
        # on this loop except the completion refresher, which finishes quickly.
        try:
            asyncio.run_coroutine_threadsafe(pending(), self.loop).result(timeout + 1)
        except (concurrent.futures.TimeoutError, KeyboardInterrupt):
            pass

    def close(self, cleanup: Coroutine[Any, Any, Any] | None = None, timeout: float = 15.0) -> None:
        if cleanup is not None and self.loop.is_running():
            try:
                self.submit(cleanup).result(timeout)
            except (concurrent.futures.TimeoutError, KeyboardInterrupt):
                pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=2)
