"""The audit log as an admin reads it: every edit with who, when, what, before and after,
about one model or server or all of them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mer.domain import AuditEntry
from mer.errors import UsageError
from mer.services.context import ServiceContext

__all__ = ["Change", "audit_log", "changes", "subject_patterns"]


def _like(text: str) -> str:
    """``text`` matched literally by SQL LIKE (with ``\\`` as the escape)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def subject_patterns(subject: str) -> list[str]:
    """The audit targets about a model (every version, or one: ``m@2``), a server or a
    pipeline."""
    name = _like(subject)
    if "@" in subject:
        return [f"model {name}", f"weights {name}/%"]
    return [f"model {name}@%", f"weights {name}@%/%", f"server {name}", f"pipeline {name}"]


async def audit_log(ctx: ServiceContext, subject: str | None = None,
                    since: datetime | None = None, user: str | None = None,
                    limit: int = 50) -> list[AuditEntry]:
    """Edits, newest first: all, or those about ``subject`` (a model or a server)."""
    if limit < 1:
        raise UsageError("--limit must be at least 1")
    async with ctx.uow() as uow:
        return await uow.audit.query(
            limit=limit, targets_like=subject_patterns(subject) if subject else (),
            since=since.astimezone(UTC) if since else None, actor=user)


@dataclass(frozen=True)
class Change:
    field: str
    before: Any
    after: Any


def changes(entry: AuditEntry) -> list[Change]:
    """What an edit changed, field by field; an add or a remove is one change of the whole
    image (a parameter unset is that key going to None)."""
    before, after = entry.before, entry.after
    if entry.action.startswith("param."):
        before, after = before or {}, after or {}
    if isinstance(before, dict) and isinstance(after, dict):
        keys = [k for k in dict.fromkeys([*before, *after]) if before.get(k) != after.get(k)]
        return [Change(k, before.get(k), after.get(k)) for k in keys if k != "row_version"]
    return [Change("", before, after)]
