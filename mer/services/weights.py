"""Weight-vector use cases: show, history, set (whole vector or one element), rollback,
and reading vectors from .npy, .json and .csv files.

Revisions are immutable: every change appends one, so history and rollback come free.
An edit may carry the newest revision its caller last saw (``expect``); it appends only
if that is still the newest, so a concurrent edit is refused with ConflictError instead
of being silently overwritten.
"""

from __future__ import annotations

import ast
import csv
import json
import struct
from array import array
from collections.abc import Mapping
from pathlib import Path
from uuid import UUID

from mer.domain import AuditEntry, ModelConfig, WeightRevision, to_vector
from mer.errors import ConflictError, UsageError, WeightNotFound
from mer.services.context import ServiceContext, require_edit
from mer.services.models import find_model

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


def read_weights_file(path: Path) -> array:
    """Read a vector from .npy (float/int, 1-D), .json (a list) or .csv (numbers)."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror or err}") from err
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return _read_npy(raw, path)
        if suffix == ".json":
            data = json.loads(raw)
            if isinstance(data, dict) and len(data) == 1:
                data = next(iter(data.values()))
            if not isinstance(data, list):
                raise UsageError(f"{path}: expected a JSON list of numbers")
            return _vector(data, path)
        if suffix == ".csv":
            rows = csv.reader(raw.decode("utf-8").splitlines())
            return _vector([float(c) for row in rows for c in row if c.strip()], path)
    except (ValueError, UnicodeDecodeError) as err:
        raise UsageError(f"{path}: {err}") from err
    raise UsageError(f"{path}: unknown weight file type '{suffix}'; use .npy, .json or .csv")


def _vector(values: list[object] | array, path: Path) -> array:
    try:
        return to_vector(values)
    except ValueError as err:
        raise UsageError(f"{path}: {err}") from err


_NPY_TYPES = {"<f8": "d", "<f4": "f", "<i8": "q", "<i4": "i", "|u1": "B", "|i1": "b"}


def _read_npy(raw: bytes, path: Path) -> array:
    # The .npy format is small enough to read without numpy (which costs ~100 ms to import):
    # magic, version, header length, a Python-literal dict header, then the raw data.
    if raw[:6] != b"\x93NUMPY":
        raise UsageError(f"{path}: not a .npy file")
    major = raw[6]
    if major == 1:
        (hlen,), start = struct.unpack("<H", raw[8:10]), 10
    else:
        (hlen,), start = struct.unpack("<I", raw[8:12]), 12
    header = ast.literal_eval(raw[start:start + hlen].decode("latin1"))
    descr, shape = header["descr"], header["shape"]
    if header.get("fortran_order") and len(shape) > 1:
        raise UsageError(f"{path}: Fortran-ordered arrays are not supported")
    if len(shape) != 1 and not (len(shape) == 2 and 1 in shape):
        raise UsageError(f"{path}: expected a 1-D array, got shape {shape}")
    code = _NPY_TYPES.get(descr)
    if code is None:
        raise UsageError(f"{path}: unsupported dtype {descr}; use float64")
    data = array(code)
    data.frombytes(raw[start + hlen:])
    return _vector(list(data) if code != "d" else data, path)
