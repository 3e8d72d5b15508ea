"""The one clock of mer: every timestamp is timezone-aware and in UTC."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["utcnow"]


def utcnow() -> datetime:
    """Timezone-aware UTC now; every timestamp in mer is aware and in UTC."""
    return datetime.now(UTC)
