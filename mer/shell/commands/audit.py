"""`audit [MODEL|SERVER] [--since 2h] [--user U]`: who changed what, when, from what to what."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from mer.lazy import lazy_module
from mer.shell import render
from mer.shell.commands.base import MerCommands, command
from mer.shell.parsing import add_json, parser, since

if TYPE_CHECKING:
    from mer.domain import AuditEntry
    from mer.services import audit as audit_svc
else:
    audit_svc = lazy_module("mer.services.audit")

__all__ = ["AuditCommands", "audit_rows"]

_audit = parser("The audit log: every edit with who, when, what, before and after, newest "
                "first. Give a model (`m` or `m@2`) or a server to see only its edits.")
_audit.add_argument("subject", nargs="?", completer=MerCommands._servers_and_models,
                    help="a MODEL[@VERSION] or a SERVER")
_audit.add_argument("--since", help="only edits since: 30m, 2h, 1d or an ISO time")
_audit.add_argument("--user", help="only this user's edits")
_audit.add_argument("--limit", type=int, default=50, help="at most N edits (default 50)")
add_json(_audit)


def _short(value: object) -> str:
    text = "-" if value is None else render.dumps(value) if isinstance(value, (dict, list)) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _what(entry: AuditEntry) -> str:
    if entry.action.endswith((".add", ".remove")):
        return entry.action.rpartition(".")[2] + ("d" if entry.action.endswith("remove") else "ed")
    return "; ".join(f"{c.field + ': ' if c.field else ''}{_short(c.before)} -> {_short(c.after)}"
                     for c in audit_svc.changes(entry)) or "-"


def audit_rows(entries: list[AuditEntry]) -> list[list[str]]:
    return [[render.when(e.at), e.actor, e.action, e.target, _what(e)] for e in entries]


def audit_image(e: AuditEntry) -> dict[str, object]:
    return {"id": str(e.id), "at": e.at, "user": e.actor, "action": e.action,
            "target": e.target, "before": e.before, "after": e.after}


AUDIT_HEADERS = ("when", "user", "action", "target", "change")


class AuditCommands(MerCommands):

    @command(_audit, "Models")
    def do_audit(self, args: argparse.Namespace) -> None:
        """The audit log of edits."""
        after = since(args.since) if args.since else None
        entries = self.call(audit_svc.audit_log(self.ctx(), args.subject, after, args.user,
                                                args.limit))
        self.emit(args, [audit_image(e) for e in entries],
                  lambda: render.Table(AUDIT_HEADERS, audit_rows(entries)))
