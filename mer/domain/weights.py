"""Weight vectors: named float64 vectors of a model, each edit an immutable revision.
No I/O."""

from __future__ import annotations

import hashlib
import math
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID, uuid4

__all__ = ["WeightRevision", "to_vector", "vector_sha256"]


def to_vector(values: Iterable[object] | array) -> array:
    """Coerce values to a float64 array; raises ValueError on NaN/inf or non-numbers."""
    if isinstance(values, array) and values.typecode == "d":
        vec = values
    else:
        vec = array("d")
        for i, v in enumerate(values):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"element {i} is {type(v).__name__} {v!r}, not a number")
            vec.append(float(v))
    # NOTE: a plain sum is one C-level pass and is finite iff every element is (barring
    # overflow), so the common all-finite case never runs the Python-level scan.
    if not math.isfinite(sum(vec)):
        for i, x in enumerate(vec):
            if not math.isfinite(x):
                raise ValueError(f"element {i} is {x!r}; weights must be finite numbers")
    return vec


def vector_sha256(values: array) -> str:
    """sha256 of the vector's little-endian float64 bytes (the stored form)."""
    return hashlib.sha256(values.tobytes()).hexdigest()


@dataclass(slots=True)
class WeightRevision:
    """One immutable revision of a named float vector of a model."""

    model_id: UUID
    name: str
    revision: int
    values: array  # array('d'), float64
    sha256: str
    author: str
    note: str = ""
    id: UUID = field(default_factory=uuid4)
    created_at: datetime | None = None
    # Kept apart from values so a history listing can carry lengths without the values.
    length: int = -1
    run_id: UUID | None = None  # the training run whose result this revision is, if any

    def __post_init__(self) -> None:
        if self.length < 0:
            self.length = len(self.values)
