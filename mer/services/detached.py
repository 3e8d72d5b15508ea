"""Detached runs: `run MODEL --detach` on a Slurm server submits the run with sbatch and
returns at once; any shell brings its record up to date (`runs`, `runs show`, `runs
wait`).

A detached run's row is written ``queued`` before the job is submitted, and gets its job
id once sbatch answers. It has no owner (the mer that submitted it may be long gone, and
the reaper must leave it alone): whoever reads the row asks the server's executor how
the job stands (``poll``) and writes what changed: ``running``, then the ending with the
kept output. The final write only changes a row that is not final yet, so when two
shells finish one run at once only one ending is stored (mer/db/run_records.py); the
one whose write landed removes the job's directory.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from mer.domain import RunKind, RunRecord, RunRequest, RunStatus, Server, parse_model_ref, utcnow
from mer.errors import ExecutionError, MerError, UsageError, WaitTimedOut
from mer.execution.interface import Detacher
from mer.services.context import ServiceContext
from mer.services.run_snapshot import take_snapshot
from mer.services.runs import _alias, _command, _container, _read_plan, _stamp, get_run
from mer.validation import check_params

__all__ = ["PENDING", "refresh_runs", "submit_run", "wait_run"]

log = logging.getLogger(__name__)

PENDING = (RunStatus.QUEUED, RunStatus.RUNNING)
FIRST_PAUSE, MAX_PAUSE = 0.2, 2.0  # seconds between looks while `runs wait` waits


def _submitter(ctx: ServiceContext, server: Server) -> Detacher:
    executor = ctx.executors.get(server.kind)
    if not isinstance(executor, Detacher):
        raise UsageError(f"--detach needs a server of kind slurm; '{server.name}' is of kind "
                         f"{server.kind}")
    return executor


def _is_detached(record: RunRecord) -> bool:
    """Not final, submitted (a job id) and owned by no mer."""
    return record.status in PENDING and record.job_id is not None and record.owner_host is None


async def submit_run(ctx: ServiceContext, ref: str, *, input: Any = None,
                     params: dict[str, Any] | None = None, server: str | None = None,
                     timeout: float | None = None) -> RunRecord:
    """Submit a oneshot run with sbatch and record it ``queued`` with its job id; returns
    at once. Raises UsageError (not a Slurm server, a worker model), ExecutionError
    (sbatch failed: the row then says failed)."""
    if timeout is not None and timeout <= 0:
        raise UsageError("--timeout must be a positive number of seconds")
    check_params(params or {})
    key = parse_model_ref(ref)
    plan = await _read_plan(ctx, ref, key, server)
    command = _command(plan, RunKind.RUN)
    model, srv = plan.target.model, plan.target.server
    executor = _submitter(ctx, srv)
    if model.mode != "oneshot":
        raise UsageError(f"--detach runs oneshot models; '{model.ref}' is a {model.mode}")
    if _container(model) is not None:
        raise UsageError(f"--detach cannot run an image; '{model.ref}' runs {model.image}")
    record = RunRecord(model=model.name, version="", server="", os_user=ctx.actor,
                       status=RunStatus.QUEUED, alias=_alias(key, plan))
    _stamp(record, plan)
    record.snapshot = take_snapshot(record, plan, kind=RunKind.RUN, params=params or {}, input=input,
                                    timeout=timeout, input_files=None)
    async with ctx.uow() as uow:
        await uow.runs.start(record)
        await uow.commit()
    payload = {"model": model.name, "version": model.version, "run_id": str(record.id),
               "parameters": {**plan.target.parameters, **(params or {})},
               "weights": plan.weights_json, "input": input}
    # NOTE: no MER_OWNER: the job outlives this mer, whose reaper kills what carries it.
    request = RunRequest(model=model.name, version=model.version, command=command,
                         payload=payload, workdir=model.workdir, env=dict(model.env),
                         timeout=timeout or model.timeout, run_id=record.id)
    # Shielded: a Ctrl-C during sbatch still learns the job id, and cancels the job.
    submitting = asyncio.ensure_future(executor.submit(request, srv))
    try:
        record.job_id = await asyncio.shield(submitting)
    except asyncio.CancelledError:
        await _cancelled(ctx, executor, srv, record, submitting)
        raise
    except MerError as err:
        record.status, record.error, record.finished_at = RunStatus.FAILED, str(err), utcnow()
        await asyncio.shield(_write(ctx, record))
        raise
    await _write(ctx, record)
    return record


async def _cancelled(ctx: ServiceContext, executor: Detacher, srv: Server, record: RunRecord,
                     submitting: asyncio.Future[str]) -> None:
    async def settle() -> None:
        try:
            record.job_id = await submitting
            await executor.cancel_job(srv, record.job_id)
        except MerError:
            pass
        record.status, record.error = RunStatus.CANCELLED, "cancelled by the user"
        record.finished_at = utcnow()
        await _write(ctx, record)

    await asyncio.shield(settle())


async def _write(ctx: ServiceContext, record: RunRecord) -> bool:
    """Write the record over its row unless that row is final already; True if it was
    written."""
    async with ctx.uow() as uow:
        written = await uow.runs.finish(record)
        await uow.commit()
    return bool(written)


async def _refresh(ctx: ServiceContext, record: RunRecord, server: Server) -> RunRecord:
    executor = ctx.executors.get(server.kind)
    if not isinstance(executor, Detacher):
        return record
    assert record.job_id is not None
    state = await executor.poll(server, record.id, record.job_id)
    if state.status is record.status:
        return record
    if state.status in PENDING:
        record.status = state.status
        await _write(ctx, record)
        return record
    record.status, record.exit_code, record.error = state.status, state.exit_code, state.error
    record.finished_at = state.finished_at or utcnow()
    record.bytes_out, record.stdout, record.stderr = state.bytes_out, state.stdout, state.stderr
    record.result = state.result
    if await _write(ctx, record):
        try:
            await executor.forget(server, record.id)
        except MerError:
            log.warning("removing the job directory of run %s failed", record.id, exc_info=True)
        return record
    # Another shell finished it first: its ending is the one stored.
    async with ctx.uow() as uow:
        stored = await uow.runs.get(record.id)
    return stored or record


async def refresh_runs(ctx: ServiceContext, records: list[RunRecord],
                       strict: bool = False) -> list[RunRecord]:
    """The records, the detached ones among them brought up to date from Slurm. A
    server that cannot say leaves its records as they were (``strict``: raises)."""
    if not any(_is_detached(r) for r in records):
        return records
    async with ctx.uow() as uow:
        servers = {s.name: s for s in await uow.servers.list()}
    out = []
    for record in records:
        server = servers.get(record.server)
        if _is_detached(record) and server is not None:
            try:
                record = await _refresh(ctx, record, server)
            except ExecutionError:
                if strict:
                    raise
                log.warning("refreshing detached run %s failed", record.id, exc_info=True)
        out.append(record)
    return out


async def wait_run(ctx: ServiceContext, run_id: str, timeout: float | None = None) -> RunRecord:
    """Wait until a run has ended (a detached run is brought up to date as it goes);
    returns its record. Raises RunNotFound, WaitTimedOut, ExecutionError."""
    if timeout is not None and timeout <= 0:
        raise UsageError("--timeout must be a positive number of seconds")
    deadline = None if timeout is None else time.monotonic() + timeout
    pause = FIRST_PAUSE
    while True:
        record = await get_run(ctx, run_id, refresh=False)
        record = (await refresh_runs(ctx, [record], strict=True))[0]
        if record.status not in PENDING:
            return record
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise WaitTimedOut(f"run {str(record.id)[:8]} is still {record.status} after "
                               f"{timeout:g} s; `runs wait {str(record.id)[:8]}` waits again")
        await asyncio.sleep(pause if left is None else min(pause, left))
        pause = min(pause * 1.5, MAX_PAUSE)
