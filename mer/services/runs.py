"""Run use cases: run or train a model, the access log, workers.

The access-log row is written (and committed) before the model starts, and completed
in a ``finally`` whatever the ending: success, failure, timeout, lost connection, an
executor error, or cancellation (Ctrl-C, SIGTERM to mer), so no run goes unrecorded.

Speed: a run's reads of the catalog are cached per shell. The insert of the access-log
row returns the catalog generation, and a changed one means the plan is read again
(and the row rewritten) before the model starts; so a run with a cached plan costs two
round trips to the database, the insert and the final update (mer/db/run_log.py).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from mer.domain import (
    ContainerSpec,
    JsonText,
    ModelConfig,
    RunKind,
    RunRecord,
    RunRequest,
    RunResult,
    RunStatus,
    RunTarget,
    Server,
    WorkerInfo,
    parse_model_ref,
    utcnow,
)
from mer.errors import (
    MerError,
    ModelNotFound,
    RecordJournaled,
    RunNotFound,
    ServerNotFound,
    UsageError,
)
from mer.execution.interface import Sinks
from mer.services.context import RunPlan, ServiceContext
from mer.services.models import find_model, parse_param_value
from mer.services.ownership import this_owner
from mer.services.run_snapshot import take_snapshot
from mer.validation import check_argv, check_env, check_input_name, check_params, check_text

__all__ = ["get_run", "list_runs", "list_workers", "load_input", "parse_input_files",
           "parse_param_overrides", "read_run_plan", "run_model", "stop_model"]


CLAIM_AFTER = 0.05  # seconds a model runs before its row records its process group


def load_input(path: Path | None = None, data: str | None = None) -> Any:
    """The user's input for a run: --data, or an --input file's content; each is JSON when
    it parses as JSON and the text otherwise (`run chat --data hello`)."""
    if path is not None and data is not None:
        raise UsageError("give --input FILE or --data VALUE, not both")
    if data is not None:
        try:
            return json.loads(data)
        except ValueError:
            return data
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise UsageError(f"cannot read --input {path}: {getattr(err, 'strerror', None) or err}") from err
        try:
            return json.loads(text)
        except ValueError:
            return text
    return None


def parse_param_overrides(pairs: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--param '{pair}' is not KEY=VALUE")
        out[key] = parse_param_value(value)
    check_params(out)
    return out


def parse_input_files(pairs: list[str] | None) -> dict[str, str]:
    """``--input-file NAME=PATH`` pairs: NAME a plain file name under /data/input."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, path = pair.partition("=")
        if not sep or not path:
            raise UsageError(f"--input-file '{pair}' is not NAME=PATH")
        check_input_name(name)
        if name in out:
            raise UsageError(f"--input-file names '{name}' twice")
        out[name] = path
    return out


def _container(model: ModelConfig) -> ContainerSpec | None:
    if model.image is None:
        return None
    return ContainerSpec(image=model.image, cpus=model.cpus, memory=model.memory,
                         network=model.network or "none")


async def run_model(
    ctx: ServiceContext,
    ref: str,
    *,
    input: Any = None,
    params: dict[str, Any] | None = None,
    server: str | None = None,
    timeout: float | None = None,
    kind: RunKind = RunKind.RUN,
    sinks: Sinks | None = None,
    input_files: dict[str, str] | None = None,
    parent_id: UUID | None = None,  # the run this one is a step of (a pipeline's)
    batch_id: UUID | None = None,
    run_id: UUID | None = None,
    plan: RunPlan | None = None,
    note: dict[str, Any] | None = None,
) -> tuple[RunRecord, RunResult | None]:
    """Run (or train) a model once and record it. Returns the completed record and the
    executor's result. ``input_files`` (name -> path) go into a container model's
    /data/input. ``batch_id`` marks the run as one of a batch (mer/services/batch.py),
    ``run_id`` is its record's id when the caller must know it whatever happens.
    ``plan`` runs that plan instead of the catalog's (a replay: its model, server,
    parameters and weight revisions as recorded); ``note`` adds keys to the run's
    snapshot. Raises MerError when the model cannot be run at all (the record then says
    failed, with the error)."""
    if timeout is not None and timeout <= 0:
        raise UsageError("--timeout must be a positive number of seconds")
    check_params(params or {})
    key = parse_model_ref(ref)
    cached = ctx.run_plans.get(_plan_key(key, server)) if plan is None else None
    command: list[str] | None = None
    if cached is not None:
        command = cached.commands.get(kind)
        if command is None:
            try:  # checked once per plan and kind, not on every run
                command = cached.commands[kind] = _command(cached.plan, kind)
            except UsageError:
                cached = None  # perhaps only stale (enabled since): decide on a fresh read
    if plan is None:
        plan = cached.plan if cached is not None else await _read_plan(ctx, ref, key, server)
    if command is None:  # not the cached plan's, checked above
        command = _command(plan, kind)
    owner = this_owner()
    record = RunRecord(model=plan.target.model.name, version="", server="", os_user=ctx.actor,
                       kind=kind, owner_host=owner.host, owner_pid=owner.pid, owner_start=owner.start,
                       parent_id=parent_id, alias=_alias(key, plan), batch_id=batch_id,
                       id=run_id or uuid4())
    _stamp(record, plan)
    snapshot = partial(take_snapshot, kind=kind, params=params or {}, input=input, timeout=timeout,
                       input_files=input_files, note=note)
    record.snapshot = snapshot(record, plan)
    # The row is written before the model starts; the insert also tells whether the
    # catalog changed since the cached plan was read.
    generation = await ctx.run_log.start(record)
    if cached is not None and generation != cached.generation:
        try:
            plan = await _read_plan(ctx, ref, key, server)
            command = _command(plan, kind)
        except BaseException as err:
            cancelled = isinstance(err, asyncio.CancelledError)
            record.status = RunStatus.CANCELLED if cancelled else RunStatus.FAILED
            record.error = "cancelled by the user" if cancelled else str(err)
            record.finished_at = utcnow()
            await asyncio.shield(ctx.run_log.update(record))
            raise
        _stamp(record, plan)
        record.snapshot = snapshot(record, plan)
        await ctx.run_log.update(record)  # the row says what really runs
    model, srv = plan.target.model, plan.target.server
    parameters = {**plan.target.parameters, **(params or {})}
    request = RunRequest(
        model=model.name, version=model.version, command=command,
        payload={
            "model": model.name, "version": model.version, "run_id": str(record.id),
            "parameters": parameters, "weights": plan.weights_json,
            "input": input,
        },
        mode=model.mode if kind is RunKind.RUN else "oneshot", framing=model.framing,
        workdir=model.workdir, env={**model.env, "MER_OWNER": owner.token},
        timeout=timeout or model.timeout, run_id=record.id,
        container=_container(model), input_files=dict(input_files or {}),
        # Where a container run's output files go (a path made for every run was
        # ~10 us of each, for the models without an image too).
        output_dir=str(ctx.artifacts.run_dir(record.id)) if ctx.artifacts and model.image else None,
        artifact_cap=ctx.artifacts.cap if ctx.artifacts else 0,
    )
    result: RunResult | None = None
    claims: list[asyncio.Future[None] | asyncio.TimerHandle] = []
    loop = asyncio.get_running_loop()

    def claim() -> None:
        claims.append(asyncio.ensure_future(ctx.run_log.claim(record)))

    def spawned(group: int | None) -> None:
        # The row learns the model's process group while the model runs, so that a
        # reaper can kill it if mer dies. Not for a run that ends at once: that would be
        # a third write for every run, and a local model is found by its MER_OWNER
        # without it (mer/services/reaping.py).
        if group is not None and group != record.process_group:
            record.process_group = group
            claims.append(loop.call_later(CLAIM_AFTER, claim))

    failed = True
    try:
        if input_files and request.container is None:
            raise UsageError(f"--input-file is for container models; '{model.ref}' has no image")
        if request.container is not None and srv.kind in ("local", "ssh"):
            raise UsageError(f"model '{model.ref}' runs image {model.image}, but server "
                             f"'{srv.name}' is of kind {srv.kind}; give it a server of kind "
                             f"container (`server add NAME --kind container`)")
        async with ctx.slots(srv.name, srv.max_runs):
            result = await ctx.executors.get(srv.kind).run(
                request, srv, replace(sinks or Sinks(), spawned=spawned))
        _complete(record, result)
        failed = False
    except asyncio.CancelledError:
        record.status, record.error = RunStatus.CANCELLED, "cancelled by the user"
        raise
    except MerError as err:
        record.status, record.error = RunStatus.FAILED, str(err)
        raise
    except BaseException as err:
        record.status, record.error = RunStatus.FAILED, f"internal error: {err!r}"
        raise
    finally:
        record.finished_at = record.finished_at or utcnow()
        waiting = _claims_pending(claims)
        # NOTE: shielded, so a second Ctrl-C cannot leave the row unfinished; a write
        # made at once (the usual SQLite ending) cannot be interrupted, and saves the
        # shield's task and three turns of the loop.
        if waiting or not ctx.run_log.update_at_once(record):
            await asyncio.shield(_finish(ctx, record, waiting, report=not failed))
    return record, result


def _claims_pending(claims: list[asyncio.Future[None] | asyncio.TimerHandle],
                    ) -> list[asyncio.Future[None]]:
    """The claims still being written; those not yet begun are called off (the run
    ended first: the final write says it all)."""
    waiting = []
    for claim in claims:
        if isinstance(claim, asyncio.TimerHandle):
            claim.cancel()
        elif not claim.done():
            waiting.append(claim)
        elif not claim.cancelled():
            claim.exception()  # taken: a failed claim is what the final write mends
    return waiting


async def _finish(ctx: ServiceContext, record: RunRecord, waiting: list[asyncio.Future[None]],
                  report: bool) -> None:
    """The final write, after the claims under way. A record kept in the journal (the
    database is away) is reported with RecordJournaled, unless another error already
    ends the run."""
    if waiting:
        await asyncio.gather(*waiting, return_exceptions=True)
    try:
        await ctx.run_log.update(record)
    except RecordJournaled:
        if report:
            raise


def _complete(record: RunRecord, result: RunResult) -> None:
    record.status, record.exit_code = result.status, result.exit_code
    record.finished_at = result.finished_at or utcnow()
    record.bytes_in, record.bytes_out = result.bytes_in, result.bytes_out
    record.stdout, record.stderr = result.stdout, result.stderr
    record.result, record.error = result.result, result.error
    record.artifacts = list(result.artifacts)
    record.job_id = result.job_id or record.job_id


def _command(plan: RunPlan, kind: RunKind) -> list[str]:
    """The argv to run; UsageError when the plan cannot run."""
    model, srv = plan.target.model, plan.target.server
    if not model.enabled:
        raise UsageError(f"model '{model.ref}' is disabled; `model enable {model.ref}` first")
    if not srv.enabled:
        raise UsageError(f"server '{srv.name}' is disabled")
    # NOTE: checked again here: a row stored before these rules must not run either.
    check_env(model.env)
    check_text("workdir", model.workdir)
    if kind is not RunKind.TRAIN:
        check_argv("command", model.command)
        return model.command
    if not model.train_command:
        raise UsageError(f"model '{model.ref}' has no training command; set train_command")
    check_argv("train_command", model.train_command)
    return model.train_command


def _alias(key: tuple[str, str | None], plan: RunPlan) -> str | None:
    """The alias a run was called by: ``live`` of ``m@live`` (the lookup resolves a
    version part that is no version of the model as an alias)."""
    asked = key[1]
    return asked if asked is not None and asked != plan.target.model.version else None


def _stamp(record: RunRecord, plan: RunPlan) -> None:
    model = plan.target.model
    record.model_id, record.version, record.server = model.id, model.version, plan.target.server.name
    record.weight_revisions = {w.name: w.revision for w in plan.weights}


def _plan_key(key: tuple[str, str | None], server: str | None) -> tuple[str | None, ...]:
    """A plan's cache key: a run on another server than the model's (``--server``, a
    batch's ``--servers``) is a plan of its own."""
    return key if server is None else (*key, server)


async def read_run_plan(ctx: ServiceContext, ref: str, *, kind: RunKind = RunKind.RUN,
                        server: str | None = None) -> RunPlan:
    """What a run of ``ref`` (on ``server``) would run, read fresh. Raises what run_model
    raises before the model starts: ModelNotFound, ServerNotFound, UsageError (disabled,
    no training command)."""
    plan = await _read_plan(ctx, ref, parse_model_ref(ref), server)
    _command(plan, kind)
    return plan


async def _read_plan(ctx: ServiceContext, ref: str, key: tuple[str, str | None],
                     server: str | None) -> RunPlan:
    """Read what the run needs of the catalog in one transaction, and cache it (with the
    server it runs on, when overridden) under the catalog generation read just before."""
    # NOTE: the generation is read first: an edit in between makes the next run read
    # again; it can never pin an older plan to a newer generation.
    generation = await ctx.run_log.catalog_generation()
    async with ctx.uow() as uow:
        target = await uow.models.get_run_target(*key)
        if target is None:
            raise ModelNotFound(ref, [m.name for m in await uow.models.list()])
        if server is not None and server != target.server.name:
            override = await uow.servers.get(server)
            if override is None:
                raise ServerNotFound(server, [s.name for s in await uow.servers.list()])
            target = RunTarget(model=target.model, server=override, parameters=target.parameters)
        weights = await uow.weights.latest(target.model.id)
    weights_json = JsonText(json.dumps({w.name: w.values.tolist() for w in weights}))
    plan = RunPlan(target=target, weights=weights, weights_json=weights_json)
    if generation is not None:
        ctx.run_plans.put(_plan_key(key, server), generation, plan)
    return plan


async def list_runs(ctx: ServiceContext, model: str | None = None, status: str | None = None,
                    since: datetime | None = None, limit: int = 50,
                    batch_id: UUID | None = None) -> list[RunRecord]:
    """The newest runs; a page at a time: mer/services/run_pages.py."""
    from mer.services.run_pages import list_run_page

    return (await list_run_page(ctx, model, status, since, limit, batch_id=batch_id)).records


async def get_run(ctx: ServiceContext, run_id: str, refresh: bool = True) -> RunRecord:
    async with ctx.uow() as uow:
        record = await uow.runs.get(run_id)
    if record is None:
        raise RunNotFound(run_id)
    if refresh:
        from mer.services.detached import refresh_runs

        record = (await refresh_runs(ctx, [record]))[0]
    return record


async def stop_model(ctx: ServiceContext, ref: str) -> int:
    """End the model's live workers on every server; returns how many were stopped."""
    async with ctx.uow() as uow:
        model: ModelConfig = await find_model(uow, ref)
        servers: list[Server] = await uow.servers.list()
    # m@live: the version live names; a name alone: every version
    version = model.version if parse_model_ref(ref)[1] is not None else None
    # Only executors that hold a worker of this model are asked (no needless ssh import).
    live = {w.server for w in ctx.executors.workers()
            if w.model == model.name and (version is None or w.version == version)}
    stopped = 0
    for srv in servers:
        if srv.name in live:
            stopped += await ctx.executors.get(srv.kind).stop_worker(srv, model.name, version)
    return stopped


def list_workers(ctx: ServiceContext) -> list[WorkerInfo]:
    return ctx.executors.workers()
