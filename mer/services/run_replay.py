"""`runs replay`: rerun a recorded run exactly, and say whether it came out the same.

The replay runs the recorded request with the recorded configuration, parameters and
weight revisions (mer/services/run_snapshot.py), not the catalog's of today: from the
access log (each weight revision read back by its number and checked by its sha256), or
from an export (mer/services/run_export.py: each weights file checked by its sha256).
It runs on the recorded server unless told another, and is a run like any other: in the
access log, its snapshot noting ``replay_of``. It is identical when it ends with the same
status, exit code and result as the recorded run.

An export names the command it runs, and anyone can write one, so replaying a file needs
--allow-edit; a run of the access log ran a configuration the catalog held, and needs
nothing more than `run`.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import mer
from mer.domain import JsonText, RunRecord, RunTarget, WeightRevision
from mer.errors import EditNotAllowed, ServerNotFound, UsageError
from mer.execution.interface import Sinks
from mer.services.context import RunPlan, ServiceContext
from mer.services.run_export import read_export, recorded_snapshot, recorded_weights
from mer.services.run_snapshot import snapshot_config, snapshot_kind
from mer.services.runs import get_run, run_model
from mer.validation import check_input_name

__all__ = ["Outcome", "Replay", "differences", "replay_run"]

SHOWN = 6  # differences listed; the rest are counted
_WIDTH = 60  # characters of a value in a difference


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a run ended, as far as a replay compares it."""

    status: str
    exit_code: int | None
    result: Any


@dataclass(frozen=True, slots=True)
class Replay:
    of: str  # the replayed run's id
    source: str  # "access log" or the export's path
    recorded: Outcome
    record: RunRecord  # the replay's own run
    differences: list[str] = field(default_factory=list)
    recorded_by: str = mer.__version__  # the mer that recorded the run

    @property
    def identical(self) -> bool:
        return not self.differences


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= _WIDTH else text[:_WIDTH - 3] + "..."


def _diff(path: str, old: Any, new: Any, out: list[str]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*old, *(k for k in new if k not in old)]:
            where = f"{path}.{key}"
            if key not in new:
                out.append(f"{where}: {_short(old[key])} -> (none)")
            elif key not in old:
                out.append(f"{where}: (none) -> {_short(new[key])}")
            else:
                _diff(where, old[key], new[key], out)
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            _diff(f"{path}[{i}]", a, b, out)
    # NOTE: type-strict: 1 and 1.0 are the same JSON number, True and 1 are not.
    elif old != new or isinstance(old, bool) != isinstance(new, bool):
        out.append(f"{path}: {_short(old)} -> {_short(new)}")


def differences(recorded: Outcome, now: Outcome) -> list[str]:
    """What differs between two endings, one line each (``result.y: 4.5 -> 5.5``): the
    first SHOWN, then how many more."""
    out: list[str] = []
    for name in ("status", "exit_code"):
        old, new = getattr(recorded, name), getattr(now, name)
        if old != new:
            out.append(f"{name}: {old} -> {new}")
    _diff("result", recorded.result, now.result, out)
    if len(out) > SHOWN:
        out[SHOWN:] = [f"... and {len(out) - SHOWN} more"]
    return out


async def _server(ctx: ServiceContext, recorded: str, given: str | None, short: str) -> Any:
    async with ctx.uow() as uow:
        srv = await uow.servers.get(given or recorded)
        if srv is None and given is not None:
            raise ServerNotFound(given, [s.name for s in await uow.servers.list()])
    if srv is None:
        raise UsageError(f"run {short} ran on server '{recorded}', which is not known here; "
                         f"give --server NAME")
    return srv


async def replay_run(ctx: ServiceContext, run_id: str | None = None, *, source: Path | None = None,
                     server: str | None = None, sinks: Sinks | None = None) -> Replay:
    """Replay run ``run_id`` of the access log, or the export at ``source``, on its
    recorded server (or ``server``). Raises RunNotFound, UsageError (no snapshot, a bad or
    altered export, an unknown server), NotFound (a weight revision is gone) and
    EditNotAllowed (an export without --allow-edit)."""
    if run_id is None and source is None:
        raise UsageError("give the id of a run to replay, or --from FILE (an export)")
    if run_id is not None and source is not None:
        raise UsageError("give a run id or --from FILE (an export), not both")
    weights: list[WeightRevision]
    if source is not None:
        if not ctx.allow_edit:
            raise EditNotAllowed("replaying an export runs the command it records: start mer "
                                 "with --allow-edit")
        export = await asyncio.to_thread(read_export, source)
        snapshot, weights, where = export.snapshot, export.weights, str(source)
        run = export.metadata.get("run")
        if not isinstance(run, dict) or not isinstance(run.get("id"), str):
            raise UsageError(f"{source}: metadata.json names no run")
        of = run["id"]
        recorded = Outcome(str(run.get("status")), run.get("exit_code"), export.result)
    else:
        assert run_id is not None
        original = await get_run(ctx, run_id)
        snapshot = recorded_snapshot(original)
        weights = await recorded_weights(ctx, original, "; replay an export of the run made before "
                                         "(`runs replay --from FILE`)")
        of, where = str(original.id), f"run {str(original.id)[:8]}"
        recorded = Outcome(str(original.status), original.exit_code, original.result)
    model = snapshot_config(snapshot, where)
    params, request = snapshot.get("params") or {}, snapshot.get("request") or {}
    if not isinstance(params, dict) or not isinstance(request, dict):
        raise UsageError(f"{where}: its parameters or request are not JSON objects")
    input_files = snapshot.get("input_files") or {}
    if not isinstance(input_files, dict) or not all(isinstance(p, str) for p in input_files.values()):
        raise UsageError(f"{where}: its input files are not NAME: PATH")
    for name in input_files:
        check_input_name(name)
    srv = await _server(ctx, model.server, server, of[:8])
    plan = RunPlan(target=RunTarget(model=replace(model, server=srv.name), server=srv,
                                    parameters=params),
                   weights=weights,
                   weights_json=JsonText(json.dumps({w.name: w.values.tolist() for w in weights})))
    record, _ = await run_model(
        ctx, model.ref, input=request.get("input"), kind=snapshot_kind(snapshot, where),
        sinks=sinks, input_files=dict(input_files), plan=plan,
        note={"replay_of": of})
    now = Outcome(str(record.status), record.exit_code, record.result)
    return Replay(of=of, source="access log" if source is None else str(source), recorded=recorded,
                  record=record, differences=differences(recorded, now),
                  recorded_by=str(snapshot.get("mer")))
