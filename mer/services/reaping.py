"""Runs whose mer is gone: finish them ``lost`` and kill what they left running.

A mer killed with ``kill -9`` (or a power cut) cannot complete its runs' rows, and its
model processes live on (orphaned locally, or on a remote server). Each running row
names its owner (mer/services/ownership.py) and the model's process group; at start-up
and on ``runs --status running``, a row of this host whose owner is gone has that group
killed (on its server: locally, or over SSH where the server is reachable) and is
finished ``lost``. A row of a live mer, or of another host, is never touched.
"""

from __future__ import annotations

import asyncio
import logging

from mer.domain import PIPELINE_PREFIX, RunRecord, RunStatus, utcnow
from mer.errors import MerError
from mer.services.context import ServiceContext
from mer.services.ownership import owner_alive, owner_token, this_owner

__all__ = ["reap_lost_runs"]

log = logging.getLogger(__name__)
KILL_TIMEOUT = 15.0


async def reap_lost_runs(ctx: ServiceContext) -> list[RunRecord]:
    """Finish as ``lost`` the running rows of this host whose mer is gone; returns them.
    Raises StorageError."""
    async with ctx.uow() as uow:
        rows = await uow.runs.running_on(this_owner().host)
    reaped = []
    for record in rows:
        if owner_alive(record.owner_host, record.owner_pid, record.owner_start) is not False:
            continue
        outcome = await _kill_group(ctx, record)
        record.status, record.finished_at = RunStatus.LOST, utcnow()
        record.error = (f"mer (pid {record.owner_pid} on {record.owner_host}) ended before the "
                        f"run did; {outcome}")
        async with ctx.uow() as uow:
            if await uow.runs.finish(record):  # unless its own mer's journal was replayed
                await uow.commit()
                reaped.append(record)
        if ctx.artifacts is not None:  # a container run's scratch files
            await asyncio.to_thread(ctx.artifacts.forget_scratch, record.id)
    return reaped


async def _kill_group(ctx: ServiceContext, record: RunRecord) -> str:
    if record.model.startswith(PIPELINE_PREFIX):
        return "a pipeline has no process of its own (its steps are runs of their own)"
    async with ctx.uow() as uow:
        server = await uow.servers.get(record.server)
    if server is None:
        return f"server '{record.server}' is gone: its process group {record.process_group} was not killed"
    try:
        executor = ctx.executors.get(server.kind)
        mark = f"MER_OWNER={owner_token(record.owner_pid, record.owner_start)}"
        killed = await asyncio.wait_for(executor.kill_group(server, record.process_group, mark),
                                        KILL_TIMEOUT)
    except (MerError, TimeoutError, OSError) as err:
        log.warning("killing run %s's process group failed", record.id, exc_info=True)
        return f"its process group {record.process_group} on {server.name} could not be killed: {err}"
    group = "its model's process group" if record.process_group is None else \
        f"its process group {record.process_group}"
    if killed:
        return f"{group} on {server.name} was killed"
    return f"{group} on {server.name} had already ended"

