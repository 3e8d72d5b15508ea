"""Pipeline use cases: define, list, show and remove pipelines (running one is
mer/services/pipeline_runs.py).

A pipeline is a named, ordered list of steps; each step names a model as `run` does
(``m``, ``m@2``, ``m@live``) and, optionally, how the previous step's result becomes its
input (``--map result.y=input.x``). Adding and removing one are edits: --allow-edit,
one transaction with its audit row.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from mer.domain import AuditEntry, Pipeline, PipelineStep, parse_model_ref
from mer.errors import ModelNotFound, PipelineNotFound, UsageError
from mer.services.context import ServiceContext, require_edit
from mer.validation import check_text

__all__ = ["add_pipeline", "build_steps", "get_pipeline", "list_pipelines", "parse_map",
           "pipeline_image", "remove_pipeline"]

# A dotted path under a root word: `result`, `result.y`, `input.a.b`; each part non-empty.
_PATH = r"(?:\.[^.\s=]+)*"
_MAP = re.compile(rf"(result{_PATH})=(input{_PATH})\Z")
MAP_HINT = "e.g. --map result.y=input.x"


def pipeline_image(p: Pipeline) -> dict[str, Any]:
    """A JSON-able picture of a pipeline, for --json and audit rows."""
    return {"id": str(p.id), "name": p.name, "description": p.description,
            "row_version": p.row_version, "created_at": p.created_at, "updated_at": p.updated_at,
            "steps": [{"model": s.model, "map": [list(m) for m in s.maps]} for s in p.steps]}


def parse_map(text: str) -> tuple[str, str]:
    """``result.PATH=input.PATH`` as a (source, destination) pair; UsageError otherwise."""
    found = _MAP.match(text.strip())
    if found is None:
        raise UsageError(f"--map '{text}' is not result.PATH=input.PATH ({MAP_HINT}; "
                         "`result` alone is the whole result, `input` alone the whole input)")
    return found.group(1), found.group(2)


def build_steps(parts: Sequence[tuple[str, str]]) -> list[PipelineStep]:
    """The steps of ``pipeline add``'s options in the order given: ("step", REF) and
    ("map", "result.y=input.x") pairs, each map belonging to the step before it."""
    steps: list[PipelineStep] = []
    for option, value in parts:
        check_text(f"--{option}", value)
        if option == "step":
            ref = value.strip()
            name, version = parse_model_ref(ref)
            if not name or any(c.isspace() for c in ref) or (ref.endswith("@") and not version):
                raise UsageError(f"--step '{value}' is not a model reference (MODEL, MODEL@VERSION "
                                 "or MODEL@ALIAS)")
            steps.append(PipelineStep(model=ref))
            continue
        if not steps:
            raise UsageError(f"--map {value} comes before any --step; put each --map after the "
                             "--step whose input it builds")
        if len(steps) == 1:
            raise UsageError(f"--map {value} follows the first --step, whose input is the "
                             "pipeline's own (--data); a --map builds a later step's input from "
                             "the result of the step before it")
        source, dest = parse_map(value)
        if dest in (d for _, d in steps[-1].maps):
            raise UsageError(f"--map {value}: {dest} of step {len(steps)} is already mapped")
        steps[-1].maps.append((source, dest))
    if not steps:
        raise UsageError("a pipeline needs at least one --step MODEL")
    return steps


def _check_name(name: str) -> None:
    check_text("name", name)
    if not name or any(c.isspace() or c in "@/:" for c in name):
        raise UsageError(f"pipeline name '{name}' must be non-empty, without spaces, '@', '/' "
                         "or ':'")


async def list_pipelines(ctx: ServiceContext) -> list[Pipeline]:
    async with ctx.uow() as uow:
        return await uow.pipelines.list()


async def get_pipeline(ctx: ServiceContext, name: str) -> Pipeline:
    """Raises PipelineNotFound."""
    async with ctx.uow() as uow:
        found = await uow.pipelines.get(name)
        if found is None:
            raise PipelineNotFound(name, [p.name for p in await uow.pipelines.list()])
    return found


async def add_pipeline(ctx: ServiceContext, name: str, steps: list[PipelineStep],
                       description: str = "") -> Pipeline:
    """Store a new pipeline, audited. Each step's model name must exist (its version or
    alias is resolved when the step runs, as `run` resolves it). Raises EditNotAllowed,
    UsageError, ModelNotFound, AlreadyExists."""
    require_edit(ctx)
    _check_name(name)
    check_text("description", description)
    if not steps:
        raise UsageError("a pipeline needs at least one --step MODEL")
    async with ctx.uow() as uow:
        for step in steps:
            model, _ = parse_model_ref(step.model)
            if await uow.models.get(model) is None:
                raise ModelNotFound(model, [m.name for m in await uow.models.list()])
        stored = await uow.pipelines.add(Pipeline(name=name, steps=steps, description=description))
        await uow.audit.append(AuditEntry(actor=ctx.actor, action="pipeline.add",
                                          target=f"pipeline {name}", after=_audit_image(stored)))
        await uow.commit()
    return stored


async def remove_pipeline(ctx: ServiceContext, name: str) -> Pipeline:
    """Delete a pipeline, audited (its past runs stay in the access log). Raises
    EditNotAllowed, PipelineNotFound."""
    require_edit(ctx)
    async with ctx.uow() as uow:
        found = await uow.pipelines.get(name)
        if found is None:
            raise PipelineNotFound(name, [p.name for p in await uow.pipelines.list()])
        await uow.pipelines.remove(name)
        await uow.audit.append(AuditEntry(actor=ctx.actor, action="pipeline.remove",
                                          target=f"pipeline {name}", before=_audit_image(found)))
        await uow.commit()
    return found


def _audit_image(p: Pipeline) -> dict[str, Any]:
    # No timestamps: an audit row has its own time, and its before/after are plain JSON.
    return {k: v for k, v in pipeline_image(p).items() if k not in ("created_at", "updated_at")}
