"""Weight-vector use cases: show, history, set (whole vector or one element), rollback,
remove, and storing the vectors a training run returned.

Revisions are immutable: every change appends one, so history and rollback come free.
An edit may carry the newest revision its caller last saw (``expect``); it appends only
if that is still the newest, so a concurrent edit is refused with ConflictError instead
of being silently overwritten. Values equal to the newest revision append nothing.
Every vector is sent with every run, so an edit that adds a vector beside others or
changes a vector's length is one a typo could make: it needs ``new``/``resize``
(NeedsConfirmation otherwise: a flag in a script, yes/no in a terminal).
Files are read by mer/services/weight_files.py.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from mer.domain import AuditEntry, ModelConfig, RunRecord, WeightRevision, to_vector
from mer.errors import ConflictError, NeedsConfirmation, UsageError, WeightNotFound
from mer.services.context import ServiceContext, require_edit
from mer.services.models import find_model
from mer.services.weight_files import read_weights_file

__all__ = ["WeightChange", "parse_values", "read_weights_file", "remove_weights",
           "result_weights", "rollback_weights", "save_trained_weights", "set_weight_element",
           "set_weights", "show_weights", "weight_history"]


@dataclass(frozen=True, slots=True)
class WeightChange:
    """What an edit of one vector did: ``current`` is the revision it stored, or, when
    the values were already the newest revision's (``changed`` False), that revision."""

    current: WeightRevision
    changed: bool = True


async def show_weights(ctx: ServiceContext, ref: str, name: str | None = None) -> list[WeightRevision]:
    async with ctx.uow() as uow:
        model = await find_model(uow, ref)
        if name is None:
            return await uow.weights.latest(model.id)
        rev = await uow.weights.get(model.id, name)
    if rev is None:
        raise _not_found(model, name, ref)
    return [rev]


async def weight_history(ctx: ServiceContext, ref: str, name: str) -> list[WeightRevision]:
    async with ctx.uow() as uow:
        model = await find_model(uow, ref)
        revs = await uow.weights.history(model.id, name)
    if not revs:
        raise _not_found(model, name, ref)
    return revs


def _not_found(model: ModelConfig, name: str, ref: str) -> WeightNotFound:
    return WeightNotFound(f"model '{model.ref}' has no weight vector '{name}'; see `weights {ref}`")


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


def _check_shape(model: ModelConfig, name: str, latest: WeightRevision | None, length: int,
                 others: Sequence[str], new: bool, resize: bool) -> None:
    """A new vector beside others, or a new length, only when asked for."""
    seen = (model.id, name, latest.revision if latest else 0)
    if latest is None and others and not new:
        has = ", ".join(others)
        raise NeedsConfirmation(
            f"model '{model.ref}' has no weight vector '{name}' (it has {has}); "
            f"add --new to create it", "--new",
            f"create a new weight vector '{name}' of {model.ref} (it has {has})?", seen)
    if latest is not None and latest.length != length and not resize:
        raise NeedsConfirmation(
            f"weight vector '{name}' of model '{model.ref}' has {latest.length} values, the new "
            f"one {length}; add --resize to change its length", "--resize",
            f"change the length of '{name}' of {model.ref} from {latest.length} to {length}?", seen)


def _vector(name: str, values: Sequence[float] | array) -> array:
    if not name:
        raise UsageError("weight vector name must not be empty")
    try:
        vec = to_vector(values)
    except ValueError as err:
        raise UsageError(f"weights '{name}': {err}") from err
    if len(vec) == 0:
        raise UsageError(f"weights '{name}': no values given")
    return vec


async def _store(ctx: ServiceContext, uow: Any, model: ModelConfig, name: str, vec: array,
                 note: str, action: str, expect: Expect, new: bool, resize: bool,
                 run_id: UUID | None = None) -> WeightChange:
    """Append one revision in ``uow`` (not committed), after the checks."""
    latest = await uow.weights.get(model.id, name)
    _check_revision(model, name, latest, expect)
    if latest is not None and latest.values == vec:
        return WeightChange(latest, changed=False)
    others = [] if latest is not None else await uow.weights.names(model.id)
    _check_shape(model, name, latest, len(vec), others, new, resize)
    rev = await uow.weights.append(model.id, name, vec, author=ctx.actor, note=note, run_id=run_id,
                                   base=latest.revision if latest else 0)
    after: dict[str, Any] = {"revision": rev.revision, "sha256": rev.sha256, "length": rev.length,
                             "note": note}
    if run_id is not None:
        after["run_id"] = str(run_id)
    await uow.audit.append(AuditEntry(
        actor=ctx.actor, action=action, target=f"weights {model.ref}/{name}",
        before=({"revision": latest.revision, "sha256": latest.sha256, "length": latest.length}
                if latest else None),
        after=after,
    ))
    return WeightChange(rev)


async def _append(ctx: ServiceContext, ref: str, name: str, values: array | list[float],
                  note: str, action: str, expect: Expect = None, new: bool = False,
                  resize: bool = False) -> WeightChange:
    require_edit(ctx)
    vec = _vector(name, values)
    async with ctx.uow() as uow:
        model = await find_model(uow, ref)
        change = await _store(ctx, uow, model, name, vec, note, action, expect, new, resize)
        if change.changed:
            await uow.commit()
    return change


async def set_weights(ctx: ServiceContext, ref: str, name: str, values: array | list[float],
                      note: str = "", expect: Expect = None, *, new: bool = False,
                      resize: bool = False) -> WeightChange:
    """Append a whole new revision of vector ``name``, unless the newest one holds these
    values already. Raises ConflictError when ``expect`` (the newest revision the caller
    saw) is no longer the newest; NeedsConfirmation for a new vector beside others
    without ``new`` or a new length without ``resize``."""
    return await _append(ctx, ref, name, values, note, "weights.set", expect, new, resize)


async def set_weight_element(ctx: ServiceContext, ref: str, name: str, index: int, value: float,
                             note: str = "", expect: Expect = None) -> WeightChange:
    """Append a revision with one element changed; ``expect`` as for ``set_weights``."""
    require_edit(ctx)
    async with ctx.uow() as uow:
        model = await find_model(uow, ref)
        latest = await uow.weights.get(model.id, name)
    if latest is None:
        raise _not_found(model, name, ref)
    _check_revision(model, name, latest, expect)
    if not -latest.length <= index < latest.length:
        raise UsageError(f"index {index} is outside {name}[0..{latest.length - 1}]")
    values = array("d", latest.values)
    values[index] = value
    # NOTE: the revision just read is the base of the change: appending checks it again.
    return await _append(ctx, ref, name, values, note or f"{name}[{index}] = {value!r}",
                         "weights.set_element", latest.revision)


async def rollback_weights(ctx: ServiceContext, ref: str, name: str, revision: int,
                           expect: Expect = None) -> WeightChange:
    """Append a copy of an old revision; ``expect`` as for ``set_weights``. Its length
    needs no ``resize``: the revision was the vector once, and is named by number."""
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
                         "weights.rollback", expect, resize=True)


async def remove_weights(ctx: ServiceContext, ref: str, name: str, expect: Expect = None, *,
                         yes: bool = False) -> WeightRevision:
    """Delete vector ``name`` with its history (runs stop receiving it); returns its
    newest revision. Raises NeedsConfirmation without ``yes``; ConflictError as for
    ``set_weights``."""
    require_edit(ctx)
    async with ctx.uow() as uow:
        model = await find_model(uow, ref)
        latest = await uow.weights.get(model.id, name)
        if latest is None:
            raise _not_found(model, name, ref)
        _check_revision(model, name, latest, expect)
        if not yes:
            what = f"weight vector '{name}' of {model.ref} ({latest.length} values, {latest.revision} " \
                   f"revision{'s' * (latest.revision != 1)})"
            raise NeedsConfirmation(f"removing {what} needs --yes", "--yes", f"remove {what}?",
                                    (model.id, name, latest.revision))
        await uow.weights.remove(model.id, name, latest.revision)
        await uow.audit.append(AuditEntry(
            actor=ctx.actor, action="weights.remove", target=f"weights {model.ref}/{name}",
            before={"revision": latest.revision, "sha256": latest.sha256, "length": latest.length},
            after=None,
        ))
        await uow.commit()
    return latest


def result_weights(result: Any) -> dict[str, Any]:
    """The weight vectors in a model's result (``{"weights": {"w": [...]}}``), unchecked;
    empty when it holds none."""
    weights = result.get("weights") if isinstance(result, dict) else None
    return weights if isinstance(weights, dict) else {}


async def save_trained_weights(ctx: ServiceContext, record: RunRecord, *, new: bool = False,
                               resize: bool = False) -> list[WeightChange]:
    """Store the vectors a training run returned as revisions linked to the run, all or
    none. Each is checked against the revision the run was given (a vector changed
    while it trained is a conflict), and needs ``new``/``resize`` as for ``set_weights``."""
    require_edit(ctx)
    if str(record.status) != "succeeded":
        raise UsageError(f"run {str(record.id)[:8]} {record.status}: its weights are not stored")
    found = result_weights(record.result)
    if not found:
        raise UsageError(f"run {str(record.id)[:8]} returned no weight vectors "
                         '(a result {"weights": {"NAME": [numbers]}})')
    vectors = {}
    for name, values in sorted(found.items()):
        if not isinstance(values, list):
            raise UsageError(f"weights '{name}' in the result of run {str(record.id)[:8]} "
                             "is not a list of numbers")
        vectors[name] = _vector(name, values)
    note = f"trained by run {str(record.id)[:8]}"
    # A vector the run was not given did not exist when it started: revision 0.
    expect = {name: record.weight_revisions.get(name, 0) for name in vectors}
    changes = []
    async with ctx.uow() as uow:
        model = await find_model(uow, f"{record.model}@{record.version}")
        if model.id != record.model_id:
            raise ConflictError(f"model '{model.ref}' was replaced since run {str(record.id)[:8]} "
                                "started; its weights are not stored")
        for name, vec in vectors.items():
            changes.append(await _store(ctx, uow, model, name, vec, note, "weights.train",
                                        expect[name], new, resize, run_id=record.id))
        if any(c.changed for c in changes):
            await uow.commit()
    return changes


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
