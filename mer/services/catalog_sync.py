"""`mer-migrate sync --catalog FILE`: make the database say what a catalog file says, as
an admin's explicit act.

``plan_sync`` compares each entry of the file with the database and returns the steps
that would make them equal, each with the lines a person reads (``model linear@1:
timeout: 30 -> 60``, ``weights linear@1/w: revision 3 -> new revision``, ``server gpu1:
added``); it writes nothing. ``apply_sync`` makes the steps through the same service
functions the shell uses, so the same rules apply and every change is an audited edit
by the OS user; each step carries the row version (or weight revision) the plan read,
so an edit made in between is refused with ConflictError instead of being overwritten.

Only what the file states is compared: a field an entry leaves out, a parameter key it
does not list, a model or server it does not name are left alone. Nothing is removed.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mer.db.catalog import Catalog, ModelEntry, ServerEntry, parse_catalog, seed_keys
from mer.domain import ModelConfig, vector_sha256
from mer.errors import ConfigError
from mer.services.context import ServiceContext, require_edit
from mer.services.models import add_model, set_params, update_model
from mer.services.servers import add_server, update_server
from mer.services.weights import set_weights

__all__ = ["SyncPlan", "SyncStep", "apply_sync", "plan_sync"]

_SERVER_FIELDS = ("kind", "host", "port", "user", "identity_file", "known_hosts", "max_runs",
                  "enabled", "engine")
_MODEL_FIELDS = ("server", "command", "train_command", "mode", "framing", "workdir", "env",
                 "timeout", "description", "enabled", "image", "cpus", "memory", "network")

Apply = Callable[[ServiceContext], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class SyncStep:
    """One entry's change: what it prints, the audited edit that makes it, and the
    catalog_seeds keys it covers."""

    lines: tuple[str, ...]
    apply: Apply
    keys: frozenset[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class SyncPlan:
    catalog: Catalog
    steps: list[SyncStep]

    @property
    def lines(self) -> list[str]:
        return [line for step in self.steps for line in step.lines]


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(value, ensure_ascii=False)


def _diff(current: Any, wanted: Any, fields: tuple[str, ...], stated: frozenset[str],
          ) -> dict[str, tuple[Any, Any]]:
    return {f: (getattr(current, f), getattr(wanted, f)) for f in fields
            if f in stated and getattr(current, f) != getattr(wanted, f)}


async def plan_sync(ctx: ServiceContext, path: Path) -> SyncPlan:
    """What syncing the catalog at ``path`` would change; writes nothing. Raises
    ConfigError for a bad catalog (naming file, entry and field)."""
    catalog = parse_catalog(path, ctx.executors.kinds())
    steps: list[SyncStep] = []
    async with ctx.uow() as uow:
        servers = {s.name for s in await uow.servers.list()}
        for entry in catalog.servers:
            current = await uow.servers.get(entry.server.name)
            steps += _server_steps(entry, current)
        servers |= {e.server.name for e in catalog.servers}
        for model in catalog.models:
            if model.config.server not in servers:
                raise ConfigError(f"{path}: {model.where}: server: no server "
                                  f"'{model.config.server}' in the catalog or the database")
            current_model = await uow.models.get(model.config.name, model.config.version)
            if current_model is None:
                steps.append(_add_model(model))
                continue
            params = await uow.parameters.get(current_model.id)
            latest = {name: await uow.weights.get(current_model.id, name) for name in model.weights}
            steps += _model_steps(model, current_model, params.values, params.row_version, latest)
    return SyncPlan(catalog, steps)


def _keys(catalog_entry: ServerEntry | ModelEntry) -> frozenset[tuple[str, str]]:
    if isinstance(catalog_entry, ServerEntry):
        return frozenset({("server", catalog_entry.server.name)})
    ref = catalog_entry.config.ref
    return frozenset({("model", ref)} | {("param", f"{ref}/{k}") for k in catalog_entry.parameters}
                     | {("weights", f"{ref}/{n}") for n in catalog_entry.weights})


def _server_steps(entry: ServerEntry, current: Any) -> list[SyncStep]:
    server = entry.server
    if current is None:
        return [SyncStep((f"server {server.name}: added",),
                         lambda ctx: add_server(ctx, server), _keys(entry))]
    changes = _diff(current, server, _SERVER_FIELDS, entry.stated)
    if not changes:
        return []
    expect = {server.name: current.row_version}
    return [SyncStep(
        tuple(f"server {server.name}: {f}: {_show(a)} -> {_show(b)}" for f, (a, b) in changes.items()),
        lambda ctx: update_server(ctx, server.name, {f: b for f, (_, b) in changes.items()}, expect),
        _keys(entry))]


def _add_model(entry: ModelEntry) -> SyncStep:
    model = entry.config
    extra = []
    if entry.parameters:
        extra.append(f"{len(entry.parameters)} parameter(s)")
    if entry.weights:
        extra.append(f"weight vector(s) {', '.join(entry.weights)}")

    async def apply(ctx: ServiceContext) -> None:
        await add_model(ctx, model)
        if entry.parameters:
            await set_params(ctx, model.ref, entry.parameters, expect=0)
        for name, values in entry.weights.items():
            await set_weights(ctx, model.ref, name, values, note="catalog sync", expect=0, new=True)

    line = f"model {model.ref}: added" + (f" with {' and '.join(extra)}" if extra else "")
    return SyncStep((line,), apply, _keys(entry))


def _model_steps(entry: ModelEntry, current: ModelConfig, params: Mapping[str, Any],
                 params_version: int, latest: Mapping[str, Any]) -> list[SyncStep]:
    ref = current.ref
    steps: list[SyncStep] = []
    changes = _diff(current, entry.config, _MODEL_FIELDS, entry.stated)
    if changes:
        expect = current.row_version
        steps.append(SyncStep(
            tuple(f"model {ref}: {f}: {_show(a)} -> {_show(b)}" for f, (a, b) in changes.items()),
            lambda ctx: update_model(ctx, ref, {f: b for f, (_, b) in changes.items()}, expect),
            frozenset({("model", ref)})))
    wanted = {k: v for k, v in entry.parameters.items() if k not in params or params[k] != v}
    if wanted:
        steps.append(SyncStep(
            tuple(f"param {ref}: {k}: {_show(params.get(k))} -> {_show(v)}" for k, v in wanted.items()),
            lambda ctx: set_params(ctx, ref, wanted, expect=params_version),
            frozenset(("param", f"{ref}/{k}") for k in wanted)))
    for name, values in entry.weights.items():
        rev = latest.get(name)
        if rev is not None and rev.sha256 == vector_sha256(values):
            continue
        line = (f"weights {ref}/{name}: added ({len(values)} values)" if rev is None
                else f"weights {ref}/{name}: revision {rev.revision} -> new revision")
        steps.append(SyncStep((line,), _set_weights(ref, name, values, rev.revision if rev else 0),
                              frozenset({("weights", f"{ref}/{name}")})))
    return steps


def _set_weights(ref: str, name: str, values: array, expect: int) -> Apply:
    # The file says so: a vector beside the model's others, or of a new length, is meant.
    return lambda ctx: set_weights(ctx, ref, name, values, note="catalog sync", expect=expect,
                                   new=True, resize=True)


async def apply_sync(ctx: ServiceContext, plan: SyncPlan,
                     done: Callable[[SyncStep], None] | None = None) -> int:
    """Make the plan's steps in order, each an audited edit; ``done`` is called after each.
    Returns how many were made. Stops at the first that fails (ConflictError when its
    entry changed since the plan read it): the steps before it stay made. The catalog's
    entries are recorded as seeded (a later `mer-migrate up` offers none of them again),
    except those of steps not made."""
    require_edit(ctx)
    made = 0
    try:
        for step in plan.steps:
            await step.apply(ctx)
            made += 1
            if done is not None:
                done(step)
    finally:
        skipped = {key for step in plan.steps[made:] for key in step.keys}
        async with ctx.uow() as uow:
            await uow.seeds.add(set(seed_keys(plan.catalog)) - skipped)
            await uow.commit()
    return made
