"""Planning a batch (mer/services/batch.py): the input lines of a JSON Lines file, the
cartesian product of sweeps, the servers and the results file, all read and checked
before the first run, so that a bad line is one error and nothing runs; and finding a
batch in the access log by a prefix of its id.

Imports: the services' context, domain helpers, errors and validation; never the shell.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

from mer.errors import NotFound, UsageError
from mer.services.context import ServiceContext
from mer.services.models import parse_param_value
from mer.validation import check_params

__all__ = ["MAX_ITEMS", "BatchItem", "check_out_path", "find_batch", "parse_servers",
           "parse_sweeps", "plan_items", "read_inputs"]

MAX_ITEMS = 100_000  # a sweep's product grows fast: a typo must not start a million runs


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One run of a batch: its place in the input order, its input and sweep parameters,
    and what its result line shows of them (``input`` and/or ``params``)."""

    index: int
    input: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    shown: dict[str, Any] = field(default_factory=dict)


def read_inputs(path: Path) -> list[Any]:
    """Each non-blank line of a JSON Lines file is one run's input. UsageError naming
    ``FILE:LINE`` for a line that is not JSON."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"cannot read --batch {path}: {getattr(err, 'strerror', None) or err}") from err
    inputs = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            inputs.append(json.loads(line))
        except ValueError as err:
            raise UsageError(f"{path}:{number}: not JSON ({getattr(err, 'msg', err)}); each line "
                             "of --batch is one run's input as JSON") from None
        check_params(inputs[-1], f"{path}:{number}")
    if not inputs:
        raise UsageError(f"--batch {path} holds no input lines")
    return inputs


def parse_sweeps(specs: Sequence[str] | None) -> dict[str, list[Any]]:
    """``--sweep KEY=V1,V2`` options: each key's values (JSON when they parse)."""
    sweeps: dict[str, list[Any]] = {}
    for spec in specs or ():
        key, sep, values = spec.partition("=")
        words = values.split(",")
        if not sep or not key or not all(w.strip() for w in words):
            raise UsageError(f"--sweep '{spec}' is not KEY=V1,V2,...")
        if key in sweeps:
            raise UsageError(f"--sweep names '{key}' twice; give all its values in one: {key}=V1,V2")
        sweeps[key] = [parse_param_value(w) for w in words]
        check_params({key: sweeps[key]}, "--sweep")
    return sweeps


def plan_items(*, inputs: list[Any] | None = None, sweeps: dict[str, list[Any]] | None = None,
               input: Any = None) -> list[BatchItem]:
    """One item per input line (else the one ``input``) for each combination of the
    sweeps' values (the cartesian product), in that order."""
    sweeps = sweeps or {}
    size = (len(inputs) if inputs is not None else 1) * math.prod(len(v) for v in sweeps.values())
    if size > MAX_ITEMS:
        raise UsageError(f"the batch would start {size} runs, more than {MAX_ITEMS}; split it")
    combos = [dict(zip(sweeps, values, strict=True)) for values in itertools.product(*sweeps.values())]
    items: list[BatchItem] = []
    for value in (inputs if inputs is not None else [input]):
        for params in combos:
            shown = {"input": value} if inputs is not None else {}
            if sweeps:
                shown["params"] = params
            items.append(BatchItem(len(items), value, params, shown))
    return items


def parse_servers(text: str | None) -> list[str] | None:
    """``--servers a,b,c``: the names, each once, in order."""
    if text is None:
        return None
    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise UsageError(f"--servers '{text}' is not a comma-separated list of server names")
    return list(dict.fromkeys(names))


def check_out_path(path: Path | None) -> Path | None:
    """Refuse an --out that cannot be written, before anything runs."""
    if path is None:
        return None
    parent = path.parent
    if path.is_dir():
        raise UsageError(f"--out {path} is a directory; give a file name")
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise UsageError(f"--out {path}: cannot write in {parent}")
    return path


async def find_batch(ctx: ServiceContext, text: str) -> UUID:
    """A batch's id from its full id or a unique prefix (at least 4 hex digits)."""
    prefix = text.strip().lower().replace("-", "")
    if len(prefix) < 4 or len(prefix) > 32 or not re.fullmatch(r"[0-9a-f]+", prefix):
        raise UsageError(f"batch id '{text}' is not a batch id; give at least 4 hex characters of one")
    async with ctx.uow() as uow:
        found = await uow.runs.batch_ids(prefix)
    if not found:
        raise NotFound(f"no batch '{text}' in the access log")
    if len(found) > 1:
        raise UsageError(f"batch id '{text}' matches several batches; give more characters")
    return found[0]
