"""One asyncio event loop for the life of the process, driven one of two ways.

cmd2 is synchronous; the DAL and the executors are asyncio. Shell commands hand their
coroutines to a bridge and wait. Never asyncio.run per command: the connection pool
belongs to this one loop.

- ``AsyncBridge`` (interactive): the loop runs in a daemon thread, so the runtime is
  built and the completion cache refreshed while the prompt waits for the user.
- ``InlineBridge`` (scripts): the main thread runs the loop while a command waits, and
  nothing runs between commands; this saves two thread hops a command (~80 µs, a tenth
  of a `run`).

A Ctrl-C (KeyboardInterrupt) or SIGTERM (SystemExit) during a command cancels it, waits
for its cleanup (the model process killed, the run recorded as cancelled), then goes on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["AsyncBridge", "InlineBridge"]

T = TypeVar("T")
CLEANUP_WAIT = 10.0


async def _others_done(timeout: float) -> None:
    """Wait until tasks shielded from a cancellation (the run record) are done."""
    # NOTE: waiting on *all* tasks is fine: between commands nothing else runs on the
    # loop except the completion refresher, which finishes quickly.
    me = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not me]
    if tasks:
        await asyncio.wait(tasks, timeout=timeout)


class AsyncBridge:
    background = True  # work submitted goes on between commands

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
        try:
            self.submit(_others_done(timeout)).result(timeout + 1)
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


class InlineBridge:
    """The loop runs in the calling (main) thread, only while a command waits.

    Signals must come through ``interrupt``, from a handler that ``signal.signal``
    installed: raised at a random point of the loop, an exception could tear a
    coroutine's cleanup in half, so during a command the signal cancels its task
    instead (as ``asyncio.Runner`` does) and is raised once the cleanup is done.
    """

    background = False  # submit runs the coroutine to its end before returning

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self._task: asyncio.Task[Any] | None = None
        self._interrupt: BaseException | None = None

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        try:
            future.set_result(self.call(coro))
        except Exception as exc:  # noqa: BLE001 - handed over to whoever asks the future
            future.set_exception(exc)
        return future

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        task: asyncio.Task[T] = self.loop.create_task(coro)
        self._task = task
        try:
            result = self.loop.run_until_complete(task)
        except BaseException as exc:
            if isinstance(exc, (KeyboardInterrupt, SystemExit)) and not task.done():
                # Raised inside the loop, not routed through interrupt(): the command
                # still gets its cleanup.
                task.cancel()
                self._interrupt = self._interrupt or exc
            if self._interrupt is None:
                raise
        finally:
            self._task = None
        interrupt, self._interrupt = self._interrupt, None
        if interrupt is not None:
            self._settle(CLEANUP_WAIT)
            raise interrupt
        return result

    def interrupt(self, exc: BaseException) -> None:
        """From a signal handler: cancel the command under way, else raise ``exc``."""
        task = self._task
        if task is None or task.done():
            raise exc
        self._interrupt = self._interrupt or exc
        task.cancel()
        # The handler ran between two bytecodes of the loop, perhaps inside select():
        # wake the loop up so that it sees the cancellation now.
        self.loop.call_soon_threadsafe(lambda: None)

    def _settle(self, timeout: float) -> None:
        try:
            self.loop.run_until_complete(_others_done(timeout))
        except (KeyboardInterrupt, SystemExit):
            pass

    def close(self, cleanup: Coroutine[Any, Any, Any] | None = None, timeout: float = 15.0) -> None:
        try:
            if cleanup is not None:
                self.loop.run_until_complete(asyncio.wait_for(cleanup, timeout))
        except (TimeoutError, KeyboardInterrupt, SystemExit):
            pass
        finally:
            self.loop.close()
