"""What an import of the Rust MER's catalog did, or would do: its entries, one line
each, and a summary (mer/services/mer_import.py)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

__all__ = ["CHANGES", "Entry", "ImportReport", "plural"]

CHANGES = ("add", "overwrite")
_KINDS = ("server", "model", "weights", "history", "skipped")
_NOUNS = {"server": "server", "model": "model", "weights": "weight vector", "history": "access-log row"}


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of the mapping: what a Rust MER entry becomes in mer, and what happens."""

    kind: str  # server, model, weights, history, skipped
    name: str
    action: str  # add, overwrite, unchanged, reuse, conflict, skip
    detail: str = ""
    count: int = 1  # access-log rows, for a history entry


@dataclass
class ImportReport:
    source: str
    applied: bool
    entries: list[Entry] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    trust: list[str] = field(default_factory=list)  # ssh servers whose host keys to trust

    def add(self, kind: str, name: str, action: str, detail: str = "", count: int = 1) -> None:
        self.entries.append(Entry(kind, name, action, detail, count))

    @property
    def changed(self) -> bool:
        return any(e.action in CHANGES for e in self.entries)

    def count(self, action: str, kind: str | None = None) -> int:
        return sum(e.count for e in self.entries if e.action == action and kind in (None, e.kind))

    def counts(self) -> dict[str, dict[str, int]]:
        """{kind: {action: how many}}: what the audit log keeps of the import."""
        out: dict[str, dict[str, int]] = defaultdict(dict)
        for e in self.entries:
            out[e.kind][e.action] = out[e.kind].get(e.action, 0) + e.count
        return dict(out)

    def lines(self) -> list[str]:
        """The mapping entry by entry, then a summary and what to do next."""
        entries = sorted(self.entries, key=lambda e: _KINDS.index(e.kind))
        width = max([len(e.name) for e in entries] + [10])
        out = [f"{e.kind:<8} {e.name:<{width}} {e.action:<9} {e.detail}".rstrip() for e in entries]
        out.append(self.summary())
        if self.trust:
            out.append("next: an import never trusts host keys; unless done already, run "
                       + ", ".join(f"`server trust {name}`" for name in self.trust)
                       + " in `mer --allow-edit` before their models' first runs")
        return out

    def summary(self) -> str:
        def counted(action: str) -> str:
            return ", ".join(plural(self.count(action, kind), noun) for kind, noun in _NOUNS.items()
                             if self.count(action, kind))

        parts = []
        for action, done, todo in (("add", "added", "to add"), ("overwrite", "overwritten", "to overwrite")):
            if self.count(action):
                parts.append(f"{done if self.applied else todo}: {counted(action)}")
        if self.count("conflict"):
            parts.append(f"{plural(self.count('conflict'), 'conflict')} skipped (--overwrite replaces them)")
        if self.count("skip"):
            parts.append(f"{self.count('skip')} skipped")
        parts.append(f"{self.count('unchanged') + self.count('reuse')} unchanged")
        if not self.changed:
            head = "nothing to change"
        else:
            head = "imported" if self.applied else "dry run, nothing written (--apply writes it)"
        return f"{head}: " + "; ".join(parts)
