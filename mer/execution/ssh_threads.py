"""The thread pool that paramiko's blocking calls (connect, open a channel, start a
command, a large write) run on, never on the event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import Callable
from typing import TypeVar, TypeVarTuple, Unpack

__all__ = ["POOL", "run_blocking", "run_blocking_then"]

POOL = concurrent.futures.ThreadPoolExecutor(max_workers=64, thread_name_prefix="mer-ssh")

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


async def run_blocking(fn: Callable[[Unpack[Ts]], T], *args: *Ts) -> T:
    """Run a paramiko call that may wait on the server, off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(POOL, fn, *args)


async def run_blocking_then(fn: Callable[[], T], then: Callable[[T], object],
                            unused: Callable[[T], object]) -> T:
    """``run_blocking(fn)``, then ``then(result)`` on the same pool thread once the result
    is on its way to the loop: follow-up work (the next run's channel) neither delays
    the caller nor costs another thread's wakeup. A result that comes when the caller
    was cancelled is handed to ``unused``, on the loop."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def give(result: T) -> None:
        if future.cancelled():
            unused(result)
        else:
            future.set_result(result)

    def fail(error: BaseException) -> None:
        if not future.cancelled():
            future.set_exception(error)

    def work() -> None:
        try:
            result = fn()
        except BaseException as err:  # noqa: BLE001 - handed to the caller
            with contextlib.suppress(RuntimeError):  # the loop may be closed at exit
                loop.call_soon_threadsafe(fail, err)
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(give, result)
        then(result)

    POOL.submit(work)
    return await future
