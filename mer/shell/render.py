"""Rendering for people (aligned tables, short summaries) and for programs (JSON).

Pure functions: text in, text out. A ``Table`` is printed plain (``table``: aligned
columns, no colour) or, when the shell writes to a terminal, fitted to its width and
coloured (``fit``, drawn with rich, imported only then: cold start does not pay for it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

if TYPE_CHECKING:
    from mer.domain import Pipeline, RunRecord, Server, WeightRevision, WorkerInfo
    from mer.services.run_replay import Replay

__all__ = ["PIPELINE_HEADERS", "RUN_HEADERS", "STEP_HEADERS", "Table", "dumps", "fit",
           "pipeline_rows", "pipeline_text", "replay_image", "replay_text", "run_image", "run_rows",
           "run_summary", "run_text", "step_image", "step_rows", "table", "weight_image", "when"]


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def dumps(value: Any) -> str:
    return json.dumps(value, default=_default, ensure_ascii=False)


def when(ts: datetime | None) -> str:
    return ts.astimezone().strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[("-" if c is None else str(c)) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class Table:
    """Rows for people, printed by the shell as ``table`` or ``fit`` (see above)."""

    headers: Sequence[str]
    rows: Sequence[Sequence[Any]]

    def plain(self) -> str:
        return table(self.headers, self.rows)


# Cell styles in a terminal, by column: how a run ended, whether a model runs.
CELL_STYLES: dict[str, dict[str, str]] = {
    "status": {"succeeded": "green", "failed": "red", "timeout": "red", "lost": "red",
               "cancelled": "yellow", "running": "cyan", "queued": "cyan"},
    "enabled": {"yes": "green", "no": "red"},
}
_GAP = 2  # spaces between columns, as in ``table``
_PADDED_END = re.compile(r" +((?:\x1b\[0m)?)$", re.MULTILINE)


def _fitted_widths(natural: list[int], width: int) -> list[int]:
    """Each column's width so that the row fits ``width``: the widest columns give way
    first (to one common cap), so short ones (ids, statuses) stay whole."""
    room = width - _GAP * (len(natural) - 1)
    if sum(natural) <= room:
        return natural
    cap = max(natural)
    while cap > 1 and sum(min(w, cap) for w in natural) > room:
        cap -= 1
    return [min(w, cap) for w in natural]


def fit(t: Table, width: int, colour: bool) -> str:
    """``t`` as at most ``width`` columns: a cell too long ends in an ellipsis; with
    ``colour``, bold headers and statuses coloured (green succeeded, red failed)."""
    from io import StringIO

    from rich.cells import cell_len
    from rich.console import Console
    from rich.table import Table as RichTable
    from rich.text import Text

    headers = [h.upper() for h in t.headers]
    cells = [[("-" if c is None else str(c)) for c in row] for row in t.rows]
    natural = [max([cell_len(h)] + [cell_len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    drawn = RichTable(box=None, pad_edge=False, show_edge=False, padding=(0, _GAP // 2),
                      header_style="bold" if colour else "")
    for header, w in zip(headers, _fitted_widths(natural, width), strict=True):
        drawn.add_column(header, width=w, no_wrap=True, overflow="ellipsis")
    styles = [CELL_STYLES.get(h, {}) for h in t.headers]
    for row in cells:
        drawn.add_row(*(Text(c, style=s.get(c, "")) for c, s in zip(row, styles, strict=True)))
    out = StringIO()
    Console(file=out, width=width, force_terminal=colour, color_system="standard" if colour else None,
            highlight=False, markup=False, emoji=False, legacy_windows=False).print(drawn)
    return _PADDED_END.sub(r"\1", out.getvalue())


def run_image(r: RunRecord, full: bool = False) -> dict[str, Any]:
    image: dict[str, Any] = {
        "id": str(r.id), "model": r.model, "version": r.version, "alias": r.alias,
        "server": r.server, "kind": str(r.kind), "status": str(r.status), "exit_code": r.exit_code,
        "started_at": r.started_at, "finished_at": r.finished_at,
        "duration_ms": None if r.duration_ms is None else round(r.duration_ms, 3),
        "os_user": r.os_user, "weight_revisions": r.weight_revisions,
        "bytes_in": r.bytes_in, "bytes_out": r.bytes_out, "result": r.result, "error": r.error,
        "artifacts": [a.image() for a in r.artifacts], "job_id": r.job_id,
    }
    if full:
        image["stdout"], image["stderr"] = r.stdout, r.stderr
        image["snapshot"] = r.snapshot
    return image


def _duration(ms: float | None) -> str:
    if ms is None:
        return "-"
    return f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.1f} ms"


def run_summary(r: RunRecord) -> str:
    """One line after a run: what ran, how it ended, how long, which run to look up.
    A worker's answer has no exit status of its own, so none is shown."""
    code = "" if r.exit_code is None else f" (exit {r.exit_code})"
    tail = f": {r.error}" if r.error and str(r.status) != "succeeded" else ""
    called = f" ({r.model}@{r.alias})" if r.alias else ""
    return (f"{r.model}@{r.version}{called} {r.status}{code} in {_duration(r.duration_ms or 0.0)}; "
            f"run {str(r.id)[:8]}{tail}")


RUN_HEADERS = ("run", "model", "server", "kind", "status", "exit", "started", "duration", "user")


def run_rows(records: Sequence[RunRecord]) -> list[list[Any]]:
    return [[str(r.id)[:8], f"{r.model}@{r.version}", r.server, r.kind, r.status,
             r.exit_code, when(r.started_at), _duration(r.duration_ms), r.os_user]
            for r in records]


def run_text(r: RunRecord, steps: Sequence[RunRecord] | None = None) -> str:
    """``runs show``: every field on its own line (``-`` where there is none), a
    pipeline run's steps, then the run's output."""
    image = run_image(r, full=True)
    image["started_at"], image["finished_at"] = when(r.started_at), when(r.finished_at)
    lines = []
    for key in ("id", "model", "version", "alias", "server", "kind", "status", "exit_code", "os_user",
                "started_at", "finished_at", "duration_ms", "weight_revisions", "bytes_in",
                "bytes_out", "result", "error", "job_id"):
        value = image[key]
        if value is None or value == "" or value == {}:
            shown = "-"
        elif isinstance(value, (dict, list)):
            shown = dumps(value)
        else:
            shown = str(value)
        lines.append(f"{key + ':':18}{shown}")
    if r.artifacts:
        lines.append("artifacts:")
        rows = [[a.name, a.size, a.sha256, "yes" if a.kept else "no (over MER_ARTIFACT_CAP)"]
                for a in r.artifacts]
        lines += ["  " + line for line in table(["name", "size", "sha256", "kept"], rows).splitlines()]
    if steps is not None:
        lines.append("steps:")
        lines += ["  " + line for line in table(STEP_HEADERS, step_rows(steps)).splitlines()]
    lines.append("--- stdout ---\n" + (r.stdout or "") + "--- stderr ---\n" + (r.stderr or ""))
    return "\n".join(lines)


STEP_HEADERS = ("step", "run", "model", "status", "exit", "duration")


def step_image(r: RunRecord) -> dict[str, Any]:
    """A pipeline step's run, as a pipeline run's JSON lists it."""
    return {"id": str(r.id), "model": r.model, "version": r.version, "status": str(r.status),
            "exit_code": r.exit_code,
            "duration_ms": None if r.duration_ms is None else round(r.duration_ms, 3)}


def step_rows(steps: Sequence[RunRecord]) -> list[list[Any]]:
    return [[n, str(r.id)[:8], f"{r.model}@{r.version}", r.status, r.exit_code,
             _duration(r.duration_ms)] for n, r in enumerate(steps, start=1)]


PIPELINE_HEADERS = ("pipeline", "steps", "description")


def pipeline_rows(pipelines: Sequence[Pipeline]) -> list[list[Any]]:
    return [[p.name, " -> ".join(s.model for s in p.steps), p.description] for p in pipelines]


def pipeline_text(p: Pipeline) -> str:
    """``pipeline show``: its fields, then its steps in order with their maps."""
    lines = [f"{'name:':13}{p.name}", f"{'description:':13}{p.description or '-'}",
             f"{'version:':13}{p.row_version}", f"{'created:':13}{when(p.created_at)}",
             "steps:"]
    rows = [[n, s.model, ", ".join(f"{src}={dst}" for src, dst in s.maps) or "-"]
            for n, s in enumerate(p.steps, start=1)]
    lines += ["  " + line for line in table(["step", "model", "map"], rows).splitlines()]
    return "\n".join(lines)


def replay_image(replay: Replay) -> dict[str, Any]:
    """`runs replay --json`: the verdict, what differs, and the replay's own run."""
    old = replay.recorded
    return {"replay_of": replay.of, "source": replay.source, "identical": replay.identical,
            "differences": replay.differences, "recorded_by": replay.recorded_by,
            "recorded": {"status": old.status, "exit_code": old.exit_code, "result": old.result},
            "run": run_image(replay.record)}


def replay_text(replay: Replay) -> str:
    """``identical`` or ``differs``, what ran, then one line per difference."""
    r = replay.record
    verdict = "identical" if replay.identical else "differs"
    head = (f"{verdict}: replay of run {replay.of[:8]} ({r.model}@{r.version} on {r.server}) "
            f"{r.status}{'' if r.exit_code is None else f' (exit {r.exit_code})'}; run {str(r.id)[:8]}")
    return "\n".join([head, *("  " + d for d in replay.differences)])


def weight_image(w: WeightRevision, head: int | None = None, values: bool = True) -> dict[str, Any]:
    image: dict[str, Any] = {
        "name": w.name, "revision": w.revision, "length": w.length, "sha256": w.sha256,
        "author": w.author, "note": w.note, "created_at": w.created_at,
        "run_id": None if w.run_id is None else str(w.run_id),
    }
    if values:
        vals = w.values.tolist()
        image["values"] = vals if head is None else vals[:head]
    return image


def server_rows(servers: Sequence[Server]) -> list[list[Any]]:
    return [[s.name, s.kind, s.host or "", s.port or "", s.user or "", s.max_runs,
             "yes" if s.enabled else "no"] for s in servers]


def worker_rows(workers: Sequence[WorkerInfo]) -> list[list[Any]]:
    return [[w.server, f"{w.model}@{w.version}", w.pid, when(w.started_at), w.requests]
            for w in workers]
