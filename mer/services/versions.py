"""New versions from old: ``model add m@3 --from m@2`` copies a version's fixed fields,
its parameters and the current revision of each of its weight vectors into a new model
row, in one audited transaction.

Versions are immutable names, so the copy shares nothing with its source: it has its own
id, parameter document and weight vectors (revision 1 of each, noting the revision it
came from), and editing one never changes the other.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

from mer.domain import AuditEntry, ModelConfig, ModelParameters, WeightRevision, parse_model_ref
from mer.errors import UsageError
from mer.services.context import ServiceContext, require_edit
from mer.services.models import EDITABLE_FIELDS, find_model, model_image
from mer.validation import validate_model

__all__ = ["CopiedModel", "add_model_from", "next_version"]


@dataclass(frozen=True, slots=True)
class CopiedModel:
    model: ModelConfig  # the new version, as stored
    source: ModelConfig
    parameters: dict[str, Any]
    weights: list[WeightRevision]  # the new vectors, revision 1 each


def next_version(versions: list[str]) -> str:
    """One past the highest version that is a number (``1`` when there is none)."""
    numbers = [int(v) for v in versions if re.fullmatch(r"[0-9]+", v)]
    return str(max(numbers, default=0) + 1)


async def add_model_from(ctx: ServiceContext, ref: str, source: str,
                         changes: Mapping[str, Any] | None = None) -> CopiedModel:
    """Add model ``ref`` (``name@version``; without a version, the next number of that
    name) as a copy of ``source`` (a version or an alias), with ``changes`` (typed values
    of EDITABLE_FIELDS) applied to the copied fields. Raises EditNotAllowed, ModelNotFound
    (no source), AlreadyExists (``ref`` exists), UsageError, ServerNotFound."""
    require_edit(ctx)
    changes = dict(changes or {})
    unknown = [f for f in changes if f not in EDITABLE_FIELDS]
    if unknown:
        raise UsageError(f"field '{unknown[0]}' cannot be set; settable fields: "
                         f"{', '.join(EDITABLE_FIELDS)}")
    name, version = parse_model_ref(ref)
    async with ctx.uow() as uow:
        src = await find_model(uow, source)
        if version is None:
            version = next_version([m.version for m in await uow.models.list() if m.name == name])
        new = dataclasses.replace(src, name=name, version=version, id=uuid4(), row_version=1,
                                  created_at=None, updated_at=None, **changes)
        validate_model(new)
        stored = await uow.models.add(new)
        params = await uow.parameters.get(src.id)
        if params.values:
            await uow.parameters.set(ModelParameters(stored.id, dict(params.values), row_version=0))
        copied = [
            await uow.weights.append(stored.id, w.name, w.values, ctx.actor,
                                     note=f"copied from {src.ref} rev {w.revision}", base=0)
            for w in await uow.weights.latest(src.id)
        ]
        after = {**model_image(stored), "from": src.ref, "parameters": params.values,
                 "weights": {w.name: {"revision": w.revision, "sha256": w.sha256, "note": w.note}
                             for w in copied}}
        await uow.audit.append(AuditEntry(actor=ctx.actor, action="model.add",
                                          target=f"model {stored.ref}", before=None, after=after))
        await uow.commit()
    return CopiedModel(stored, src, dict(params.values), copied)
