"""Running a pipeline: its steps in order, each step's result the next step's input.

The pipeline has its own access-log row (model ``pipeline:NAME``, version the pipeline's
row version, server ``-``), written before the first step starts and completed whatever
the ending. Each step is an ordinary run (mer/services/runs.py ``run_model``: resolved,
logged, owned, journaled and streamed as any run) whose row names the pipeline's run as
its parent. The first step that does not succeed (failed, timed out, cancelled, lost, or
could not start at all) stops the pipeline, whose row ends with that status and an error
naming the step (``step 2 (m2@1) failed (exit 3)``); otherwise the pipeline succeeds
with the last step's result.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from mer.domain import PIPELINE_PREFIX, RunKind, RunRecord, RunStatus, utcnow
from mer.errors import MerError, PipelineNotFound, RecordJournaled, UsageError
from mer.execution.interface import Sinks
from mer.services.context import ServiceContext
from mer.services.ownership import this_owner
from mer.services.runs import run_model

__all__ = ["PIPELINE_SERVER", "pipeline_steps", "run_pipeline", "step_input"]

PIPELINE_SERVER = "-"  # a pipeline's own row runs nothing anywhere; its steps do

StepDone = Callable[[int, int, RunRecord], None]  # (step number, of how many, its record)


def _read(result: Any, source: str, step: int) -> Any:
    value = result
    for part in source.split(".")[1:]:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise UsageError(f"the result of step {step} has no {source}")
    return value


def _write(built: Any, dest: str, value: Any) -> Any:
    parts = dest.split(".")[1:]
    if not parts:
        return value  # `input`: the whole input
    if not isinstance(built, dict):
        raise UsageError(f"cannot set {dest}: the input is not an object")
    node = built
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise UsageError(f"cannot set {dest}: {part} is not an object")
        node = child
    node[parts[-1]] = value
    return built


def step_input(previous: Any, maps: Sequence[tuple[str, str]], step: int) -> Any:
    """Step ``step``'s input: the previous step's result, whole without maps, else an
    object built by the maps in order. Raises UsageError naming the map that fails."""
    if not maps:
        return previous
    built: Any = {}
    for source, dest in maps:
        try:
            built = _write(built, dest, _read(previous, source, step - 1))
        except UsageError as err:
            raise UsageError(f"--map {source}={dest}: {err}") from None
    return built


async def run_pipeline(ctx: ServiceContext, name: str, *, input: Any = None,
                       timeout: float | None = None, sinks: Sinks | None = None,
                       on_step: StepDone | None = None) -> tuple[RunRecord, list[RunRecord]]:
    """Run pipeline ``name`` with ``input`` as its first step's input; ``timeout`` (if
    given) bounds each step. Returns the pipeline's completed record and its steps'.
    A step that fails is not an exception: the record says how the pipeline ended.
    Raises PipelineNotFound, UsageError; CancelledError after recording the cancel."""
    if timeout is not None and timeout <= 0:
        raise UsageError("--timeout must be a positive number of seconds")
    async with ctx.uow() as uow:
        pipeline = await uow.pipelines.get(name)
        if pipeline is None:
            raise PipelineNotFound(name, [p.name for p in await uow.pipelines.list()])
    owner = this_owner()
    record = RunRecord(model=PIPELINE_PREFIX + name, version=str(pipeline.row_version),
                       server=PIPELINE_SERVER, os_user=ctx.actor, kind=RunKind.RUN,
                       owner_host=owner.host, owner_pid=owner.pid, owner_start=owner.start)
    await ctx.run_log.start(record)
    steps: list[RunRecord] = []
    total, number, ref = len(pipeline.steps), 0, ""
    report = False
    try:
        value = input
        for number, step in enumerate(pipeline.steps, start=1):
            ref = step.model
            try:
                given = value if number == 1 else step_input(value, step.maps, number)
                done, _ = await run_model(ctx, step.model, input=given, timeout=timeout,
                                          sinks=sinks, parent_id=record.id)
            except MerError as err:  # the step could not run at all (or was not recorded)
                record.status, record.error = RunStatus.FAILED, f"step {number} ({ref}) failed: {err}"
                break
            steps.append(done)
            ref = f"{done.model}@{done.version}"
            if on_step is not None:
                on_step(number, total, done)
            if done.status is not RunStatus.SUCCEEDED:
                code = "" if done.exit_code is None else f" (exit {done.exit_code})"
                record.status, record.exit_code = done.status, done.exit_code
                record.error = f"step {number} ({ref}) {done.status}{code}"
                break
            value = done.result
        else:
            record.status, record.result = RunStatus.SUCCEEDED, value
            record.exit_code = steps[-1].exit_code if steps else None
        report = True
    except asyncio.CancelledError:
        record.status = RunStatus.CANCELLED
        record.error = f"step {number} ({ref}) cancelled by the user" if number else "cancelled by the user"
        raise
    except BaseException as err:
        record.status, record.error = RunStatus.FAILED, f"internal error: {err!r}"
        raise
    finally:
        record.finished_at = utcnow()
        record.bytes_in = sum(s.bytes_in for s in steps)
        record.bytes_out = sum(s.bytes_out for s in steps)
        # NOTE: shielded, so a second Ctrl-C cannot leave the pipeline's row running.
        await asyncio.shield(_finish(ctx, record, report))
    return record, steps


async def _finish(ctx: ServiceContext, record: RunRecord, report: bool) -> None:
    try:
        await ctx.run_log.update(record)
    except RecordJournaled:
        if report:
            raise


def is_pipeline_run(record: RunRecord) -> bool:
    return record.model.startswith(PIPELINE_PREFIX) and record.server == PIPELINE_SERVER


async def pipeline_steps(ctx: ServiceContext, record: RunRecord) -> list[RunRecord] | None:
    """A pipeline run's steps, in the order they ran; None for a run of a model."""
    if not is_pipeline_run(record):
        return None
    async with ctx.uow() as uow:
        return await uow.runs.children(record.id)
