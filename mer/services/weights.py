"""Weight-vector use cases: show, history, set (whole vector or one element), rollback.
Vectors are read from files by mer/services/weight_files.py.

Revisions are immutable: every change appends one, so history and rollback come free.
An edit may carry the newest revision its caller last saw (``expect``); it appends only
if that is still the newest, so a concurrent edit is refused with ConflictError instead
of being silently overwritten.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping
from uuid import UUID

from mer.domain import AuditEntry, ModelConfig, WeightRevision
from mer.errors import ConflictError, UsageError, WeightNotFound
from mer.services.context import ServiceContext, require_edit
from mer.services.models import find_model
from mer.services.weight_files import read_weights_file

__all__ = ["parse_values", "read_weights_file", "rollback_weights", "set_weight_element",
           "set_weights", "show_weights", "weight_history"]


async def show_weights(ctx: ServiceContext, ref: str, name: str | None = None) -> list[WeightRevision]:
    async with ctx.uow() as uow:
        model = await find_model(uow, ref)
        if name is None:
            return await uow.weights.latest(model.id)
        rev = await uow.weights.get(model.id, name)
    if rev is None:
        raise WeightNotFound(f"model '{model.ref}' has no weight vector '{name}'; see `weights {ref}`")
    return [rev]


async def weight_history(ctx: ServiceContext, ref: str, name: str) -> list[WeightRevision]:
    async with ctx.uow() as uow:
        model = await find_model(uow, ref)
        revs = await uow.weights.history(model.id, name)
    if not revs:
        raise WeightNotFound(f"model '{model.ref}' has no weight vector '{name}'; see `weights {ref}`")
    return revs


# The newest revision of a vector the caller last saw: a number (0: it saw no such
# vector), or a mapping of (model id, vector name) to numbers (absent: nothing to check),
# or None for no check at all (a script that never looked).
Expect = int | Mapping[tuple[UUID, str], int] | None


def _check_revision(model: ModelConfig, name: str, latest: WeightRevision | None,
                    expect: Expect) -> None:
    if isinstance(expect, Mapping):
        expect = expect.get((model.id, name))
    newest = latest.revision if latest is not None else 0
    if expect is not None and expect != newest:
        raise ConflictError(
            f"weight vector '{name}' of model '{model.ref}' was changed by someone else since "
            f"you read it (you saw revision {expect}, it is now {newest}); "
            f"reload with `show {model.ref}` and retry"
        )


async def _append(ctx: ServiceContext, ref: str, name: str, values: array | list[float],
                  note: str, action: str, expect: Expect = None) -> WeightRevision:
    require_edit(ctx)
    async with ctx.uow() as uow:
        model = await find_model(uow, ref)
        latest = await uow.weights.get(model.id, name)
        _check_revision(model, name, latest, expect)
        rev = await uow.weights.append(model.id, name, values, author=ctx.actor, note=note)
        await uow.audit.append(AuditEntry(
            actor=ctx.actor, action=action, target=f"weights {model.ref}/{name}",
            before={"revision": latest.revision, "sha256": latest.sha256} if latest else None,
            after={"revision": rev.revision, "sha256": rev.sha256, "length": rev.length,
                   "note": note},
        ))
        await uow.commit()
    return rev


async def set_weights(ctx: ServiceContext, ref: str, name: str, values: array | list[float],
                      note: str = "", expect: Expect = None) -> WeightRevision:
    """Append a whole new revision of vector ``name``. Raises ConflictError when ``expect``
    (the newest revision the caller saw) is no longer the newest."""
    if not name:
        raise UsageError("weight vector name must not be empty")
    if len(values) == 0:
        raise UsageError(f"weights '{name}': no values given")
    return await _append(ctx, ref, name, values, note, "weights.set", expect)


async def set_weight_element(ctx: ServiceContext, ref: str, name: str, index: int, value: float,
                             note: str = "", expect: Expect = None) -> WeightRevision:
    """Append a revision with one element changed; ``expect`` as for ``set_weights``."""
    require_edit(ctx)
    async with ctx.uow() as uow:
        model = await find_model(uow, ref)
        latest = await uow.weights.get(model.id, name)
    if latest is None:
        raise WeightNotFound(f"model '{model.ref}' has no weight vector '{name}'; see `weights {ref}`")
    _check_revision(model, name, latest, expect)
    if not -latest.length <= index < latest.length:
        raise UsageError(f"index {index} is outside {name}[0..{latest.length - 1}]")
    values = array("d", latest.values)
    values[index] = value
    # NOTE: the revision just read is the base of the change: appending checks it again.
    return await _append(ctx, ref, name, values, note or f"{name}[{index}] = {value!r}",
                         "weights.set_element", latest.revision)


async def rollback_weights(ctx: ServiceContext, ref: str, name: str, revision: int,
                           expect: Expect = None) -> WeightRevision:
    """Append a copy of an old revision; ``expect`` as for ``set_weights``."""
    require_edit(ctx)
    async with ctx.uow() as uow:
        model = await find_model(uow, ref)
        old = await uow.weights.get(model.id, name, revision)
    if old is None:
        raise WeightNotFound(
            f"model '{model.ref}' has no revision {revision} of '{name}'; "
            f"see `weights {ref} {name} --history`"
        )
    return await _append(ctx, ref, name, old.values, f"rollback to revision {revision}",
                         "weights.rollback", expect)


def parse_values(text: str) -> list[float]:
    """'0.1,0.2, 3' -> floats; raises UsageError naming the bad element."""
    out = []
    for i, part in enumerate(p for p in text.replace(";", ",").split(",")):
        part = part.strip()
        if not part:
            continue
        try:
            out.append(float(part))
        except ValueError:
            raise UsageError(f"value {i} '{part}' is not a number") from None
    return out
