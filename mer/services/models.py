"""Model use cases: list, show, add, remove, enable/disable, set a field, edit parameters.

Every edit checks the allow-edit policy, runs in one unit of work, writes an audit entry
and carries the row version it read (``expect`` when the caller saw an older one), so a
concurrent edit is refused with ConflictError instead of being lost.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from mer.db.interfaces import UnitOfWork
from mer.domain import AuditEntry, ModelConfig, ModelParameters, parse_model_ref
from mer.errors import ConflictError, ModelNotFound, ServerNotFound, UsageError
from mer.services.context import ServiceContext, require_edit
from mer.validation import check_params, validate_model

__all__ = [
    "EDITABLE_FIELDS",
    "ModelView",
    "WeightSummary",
    "add_model",
    "find_model",
    "list_models",
    "model_image",
    "remove_model",
    "set_model_enabled",
    "set_model_field",
    "set_param",
    "set_params",
    "show_model",
    "unset_param",
    "update_model",
]

EDITABLE_FIELDS = ("command", "train_command", "mode", "framing", "workdir", "timeout",
                   "description", "server", "env", "enabled", "image", "cpus", "memory",
                   "network")


@dataclass(frozen=True, slots=True)
class WeightSummary:
    name: str
    revision: int
    length: int
    sha256: str
    author: str
    created_at: Any


@dataclass(frozen=True, slots=True)
class ModelView:
    model: ModelConfig
    parameters: dict[str, Any]
    weights: list[WeightSummary]
    parameters_version: int = 0  # the parameters' row version (0: none stored yet)
    aliases: tuple[str, ...] = ()  # the aliases that name this version (``live`` of m@live)


def model_image(m: ModelConfig) -> dict[str, Any]:
    """A JSON-able picture of a model's fixed fields, for audit rows and --json."""
    return {
        "id": str(m.id), "name": m.name, "version": m.version, "server": m.server,
        "command": m.command, "train_command": m.train_command, "mode": m.mode,
        "framing": m.framing, "workdir": m.workdir, "env": m.env, "timeout": m.timeout,
        "description": m.description, "enabled": m.enabled, "image": m.image, "cpus": m.cpus,
        "memory": m.memory, "network": m.network, "row_version": m.row_version,
    }


async def find_model(uow: UnitOfWork, ref: str) -> ModelConfig:
    name, version = parse_model_ref(ref)
    model = await uow.models.get(name, version)
    if model is None:
        raise ModelNotFound(ref, [m.name for m in await uow.models.list()])
    return model


Expect = int | Mapping[str, int] | None


def _check_version(model: ModelConfig, expect: Expect) -> None:
    """``expect`` is the row version the caller last saw: a number, or a mapping of
    model refs to the versions a shell has shown (absent: nothing to check)."""
    if isinstance(expect, Mapping):
        expect = expect.get(model.ref)
    if expect is not None and expect != model.row_version:
        raise ConflictError(
            f"model '{model.ref}' was changed by someone else since you read it "
            f"(you saw version {expect}, it is now {model.row_version}); "
            f"reload with `show {model.ref}` and retry"
        )


async def _audit(ctx: ServiceContext, uow: UnitOfWork, action: str, target: str,
                 before: Any, after: Any) -> None:
    await uow.audit.append(AuditEntry(actor=ctx.actor, action=action, target=target,
                                      before=before, after=after))


async def list_models(ctx: ServiceContext, server: str | None = None) -> list[ModelConfig]:
    async with ctx.uow() as uow:
        if server is not None and await uow.servers.get(server) is None:
            raise ServerNotFound(server, [s.name for s in await uow.servers.list()])
        return await uow.models.list(server)


async def show_model(ctx: ServiceContext, ref: str) -> ModelView:
    async with ctx.uow() as uow:
        model = await find_model(uow, ref)
        params = await uow.parameters.get(model.id)
        weights = [
            WeightSummary(w.name, w.revision, w.length, w.sha256, w.author, w.created_at)
            for w in await uow.weights.latest(model.id)
        ]
        aliases = await _aliases_of(uow, model)
    return ModelView(model, params.values, weights, params.row_version, aliases)


async def _aliases_of(uow: UnitOfWork, model: ModelConfig) -> tuple[str, ...]:
    return tuple(a.alias for a in await uow.aliases.list(model.name) if a.version == model.version)


async def add_model(ctx: ServiceContext, model: ModelConfig) -> ModelConfig:
    require_edit(ctx)
    validate_model(model)
    async with ctx.uow() as uow:
        stored = await uow.models.add(model)
        await _audit(ctx, uow, "model.add", f"model {stored.ref}", None, model_image(stored))
        await uow.commit()
    return stored


async def remove_model(ctx: ServiceContext, ref: str, expect: Expect = None) -> ModelConfig:
    require_edit(ctx)
    async with ctx.uow() as uow:
        model = await find_model(uow, ref)
        _check_version(model, expect)
        aliases = await _aliases_of(uow, model)
        if aliases:
            # An alias must never name a version that is gone (m@live would run nothing).
            raise UsageError(f"'{model.ref}' is {', '.join(f'{model.name}@{a}' for a in aliases)};"
                             f" move the alias (`model alias {model.name} {aliases[0]} VERSION`)"
                             f" or remove it (`model unalias {model.name} {aliases[0]}`) first")
        await uow.models.remove(model.id)
        await _audit(ctx, uow, "model.remove", f"model {model.ref}", model_image(model), None)
        await uow.commit()
    return model


async def _update(ctx: ServiceContext, ref: str, expect: Expect, action: str,
                  **changes: Any) -> ModelConfig:
    require_edit(ctx)
    async with ctx.uow() as uow:
        model = await find_model(uow, ref)
        _check_version(model, expect)
        changed = dataclasses.replace(model, **changes)
        validate_model(changed)
        stored = await uow.models.update(changed)
        await _audit(ctx, uow, action, f"model {model.ref}", model_image(model), model_image(stored))
        await uow.commit()
    return stored


async def update_model(ctx: ServiceContext, ref: str, changes: Mapping[str, Any],
                       expect: Expect = None) -> ModelConfig:
    """Change several fields (typed values, EDITABLE_FIELDS) in one audited edit, with the
    rules and the conflict check of ``set_model_field``."""
    unknown = [f for f in changes if f not in EDITABLE_FIELDS]
    if unknown:
        raise UsageError(f"field '{unknown[0]}' cannot be set; settable fields: "
                         f"{', '.join(EDITABLE_FIELDS)}")
    if "server" in changes:
        async with ctx.uow() as uow:
            if await uow.servers.get(changes["server"]) is None:
                raise ServerNotFound(changes["server"])
    return await _update(ctx, ref, expect, "model.update", **changes)


async def set_model_enabled(ctx: ServiceContext, ref: str, enabled: bool,
                            expect: Expect = None) -> ModelConfig:
    return await _update(ctx, ref, expect, "model.enable" if enabled else "model.disable",
                         enabled=enabled)


def parse_field_value(field: str, value: str) -> Any:
    """Turn the text a user typed into the typed value of a model field."""
    if field not in EDITABLE_FIELDS:
        raise UsageError(f"field '{field}' cannot be set; settable fields: {', '.join(EDITABLE_FIELDS)}")
    if field in ("command", "train_command"):
        try:
            argv = shlex.split(value)
        except ValueError as err:
            raise UsageError(f"{field}: {err}") from err
        if field == "command":
            return argv  # empty: a container model runs its image's entrypoint
        return argv or None
    if field == "timeout":
        if value.lower() in ("none", "off", "0"):
            return None
        try:
            return float(value)
        except ValueError:
            raise UsageError(f"timeout '{value}' is not a number of seconds") from None
    if field == "enabled":
        if value.lower() not in ("true", "false", "yes", "no", "1", "0", "on", "off"):
            raise UsageError(f"enabled '{value}' is not true or false")
        return value.lower() in ("true", "yes", "1", "on")
    if field == "env":
        try:
            env = json.loads(value)
        except ValueError:
            env = None
        if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
            raise UsageError('env must be a JSON object of strings, e.g. {"OMP_NUM_THREADS": "4"}')
        return env
    if field in ("workdir", "network"):
        return value or None
    if field in ("image", "memory"):
        return None if value.lower() in ("", "-", "none") else value
    if field == "cpus":
        if value.lower() in ("", "-", "none"):
            return None
        try:
            return float(value)
        except ValueError:
            raise UsageError(f"cpus '{value}' is not a number") from None
    return value


async def set_model_field(ctx: ServiceContext, ref: str, field: str, value: str,
                          expect: Expect = None) -> ModelConfig:
    typed = parse_field_value(field, value)
    if field == "server":
        async with ctx.uow() as uow:
            if await uow.servers.get(typed) is None:
                raise ServerNotFound(typed)
    return await _update(ctx, ref, expect, f"model.set.{field}", **{field: typed})


def parse_param_value(text: str) -> Any:
    """JSON when it parses as JSON (numbers, true, lists, objects), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


ParamsExpect = int | Mapping[UUID, int] | None


def _check_params_version(model: ModelConfig, params: ModelParameters,
                          expect: ParamsExpect) -> None:
    """As ``_check_version``, for the parameters' own row version; a mapping is keyed by
    model id (absent: nothing to check)."""
    if isinstance(expect, Mapping):
        expect = expect.get(model.id)
    if expect is not None and expect != params.row_version:
        raise ConflictError(
            f"the parameter set of model '{model.ref}' was changed by someone else "
            f"since you read it (you saw version {expect}, it is now {params.row_version}); "
            f"reload with `show {model.ref}` and retry"
        )


async def _edit_params(ctx: ServiceContext, ref: str, key: str, value: Any, remove: bool,
                       expect: ParamsExpect) -> ModelParameters:
    require_edit(ctx)
    async with ctx.uow() as uow:
        model = await find_model(uow, ref)
        params = await uow.parameters.get(model.id)
        _check_params_version(model, params, expect)
        before = dict(params.values)
        if remove:
            if key not in params.values:
                raise UsageError(f"model '{model.ref}' has no parameter '{key}'")
            del params.values[key]
        else:
            params.values[key] = value
        stored = await uow.parameters.set(params)
        await _audit(ctx, uow, "param.unset" if remove else "param.set", f"model {model.ref}",
                     {key: before.get(key)}, None if remove else {key: value})
        await uow.commit()
        return stored


async def set_params(ctx: ServiceContext, ref: str, values: Mapping[str, Any],
                     expect: ParamsExpect = None) -> ModelParameters:
    """Set several parameters (typed JSON values) in one audited edit; ``expect`` as for
    ``set_param``."""
    if any(not key for key in values):
        raise UsageError("parameter key must not be empty")
    check_params(dict(values))
    require_edit(ctx)
    async with ctx.uow() as uow:
        model = await find_model(uow, ref)
        params = await uow.parameters.get(model.id)
        _check_params_version(model, params, expect)
        before = {k: params.values.get(k) for k in values}
        params.values = {**params.values, **values}
        stored = await uow.parameters.set(params)
        await _audit(ctx, uow, "param.set", f"model {model.ref}", before, dict(values))
        await uow.commit()
        return stored


async def set_param(ctx: ServiceContext, ref: str, key: str, value: str,
                    expect: ParamsExpect = None) -> ModelParameters:
    """Set one parameter; ``expect`` is the parameters' row version the caller last saw
    (a number, or a mapping of model ids to versions; None: no check). Returns the stored
    parameters with their new row version. Raises ConflictError for a stale ``expect``."""
    if not key:
        raise UsageError("parameter key must not be empty")
    typed = parse_param_value(value)
    check_params({key: typed})
    return await _edit_params(ctx, ref, key, typed, False, expect)


async def unset_param(ctx: ServiceContext, ref: str, key: str,
                      expect: ParamsExpect = None) -> ModelParameters:
    """Remove one parameter; ``expect`` as for ``set_param``."""
    return await _edit_params(ctx, ref, key, None, True, expect)
