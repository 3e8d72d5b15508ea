"""What makes a run reproducible: the snapshot its access-log row keeps.

A run's snapshot is taken from the run plan it already holds (mer/services/context.py),
so it costs no query and no hashing: each weight revision's sha256 was computed when the
revision was stored. It goes into the row that is written before the model starts, so a
run that is lost or killed is as reproducible as one that ended::

    {"mer": "0.1.0", "kind": "run",
     "model": {"id": ..., "name": "linear", "version": "1"},
     "config": {"command": [...], "train_command": [...], "mode", "framing", "workdir",
                "env", "timeout" (the one the run had), "image", "cpus", "memory", "network"},
     "params": {...}  (after the run's --param overrides),
     "weights": {"w": {"revision": 3, "sha256": "...", "length": 3}},
     "request": the JSON request the model got, without the weight values,
     "input_files": {NAME: PATH}, "server": {"name", "kind", "host", "port", "user"},
     "user": "ann"}

and ``"replay_of": RUN ID`` in a replay's own snapshot (mer/services/run_replay.py).
``snapshot_config`` reads a snapshot back (from the database or an export) into the
model configuration it recorded, with the rules every model obeys.

Imports: mer.domain, mer.errors, mer.validation and the run plan's type.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

import mer
from mer.domain import ModelConfig, RunKind, RunRecord
from mer.errors import UsageError
from mer.services.context import RunPlan
from mer.validation import validate_model

__all__ = ["snapshot_config", "snapshot_kind", "take_snapshot"]


def take_snapshot(record: RunRecord, plan: RunPlan, *, kind: RunKind, params: dict[str, Any],
                  input: Any, timeout: float | None, input_files: Mapping[str, str] | None,
                  note: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The snapshot of ``record``'s run of ``plan`` (``params``: the run's overrides,
    ``timeout``: its --timeout); ``note`` adds keys (a replay's ``replay_of``)."""
    model, srv = plan.target.model, plan.target.server
    parameters = {**plan.target.parameters, **params}
    snapshot: dict[str, Any] = {
        "mer": mer.__version__,
        "kind": str(kind),
        "model": {"id": str(model.id), "name": model.name, "version": model.version},
        "config": {
            "command": list(model.command), "train_command": model.train_command,
            "mode": model.mode, "framing": model.framing, "workdir": model.workdir,
            "env": dict(model.env), "timeout": timeout or model.timeout, "image": model.image,
            "cpus": model.cpus, "memory": model.memory, "network": model.network,
        },
        "params": parameters,
        "weights": {w.name: {"revision": w.revision, "sha256": w.sha256, "length": w.length}
                    for w in plan.weights},
        # The request as the model got it (mer/services/runs.py), its weights by revision.
        "request": {"model": model.name, "version": model.version, "run_id": str(record.id),
                    "parameters": parameters, "input": input},
        "input_files": dict(input_files or {}),
        "server": {"name": srv.name, "kind": srv.kind, "host": srv.host, "port": srv.port,
                   "user": srv.user},
        "user": record.os_user,
    }
    if note:
        snapshot.update(note)
    return snapshot


def _field(section: Mapping[str, Any], key: str, types: type | tuple[type, ...], where: str) -> Any:
    value = section.get(key)
    if value is not None and not isinstance(value, types):
        raise UsageError(f"{where}: {key} is {type(value).__name__}, not what mer records")
    return value


def _text(section: Mapping[str, Any], key: str, where: str) -> str:
    value = _field(section, key, str, where)
    if not value:
        raise UsageError(f"{where}: no {key} recorded")
    return str(value)


def snapshot_kind(snapshot: Mapping[str, Any], where: str) -> RunKind:
    try:
        return RunKind(snapshot.get("kind", "run"))
    except ValueError:
        raise UsageError(f"{where}: kind {snapshot.get('kind')!r} is not run or train") from None


def snapshot_config(snapshot: Mapping[str, Any], where: str) -> ModelConfig:
    """The model configuration a snapshot recorded, checked by the rules of every model
    (a snapshot may come from a file). Raises UsageError naming ``where``."""
    model, config = snapshot.get("model"), snapshot.get("config")
    if not isinstance(model, Mapping) or not isinstance(config, Mapping):
        raise UsageError(f"{where}: no model configuration recorded")
    command = _field(config, "command", list, where) or []
    train = _field(config, "train_command", list, where)
    env = _field(config, "env", dict, where) or {}
    if not all(isinstance(w, str) for w in [*command, *(train or []), *env.values()]):
        raise UsageError(f"{where}: a command or env value is not text")
    timeout = _field(config, "timeout", (int, float), where)
    cpus = _field(config, "cpus", (int, float), where)
    try:
        model_id = UUID(str(model.get("id")))
    except ValueError:
        raise UsageError(f"{where}: model id {model.get('id')!r} is not a uuid") from None
    found = ModelConfig(
        name=_text(model, "name", where), version=_text(model, "version", where),
        server=_text(_server(snapshot, where), "name", where), command=command,
        train_command=train, mode=_field(config, "mode", str, where) or "oneshot",
        framing=_field(config, "framing", str, where) or "jsonl",
        workdir=_field(config, "workdir", str, where), env=dict(env),
        timeout=None if timeout is None else float(timeout),
        image=_field(config, "image", str, where), cpus=None if cpus is None else float(cpus),
        memory=_field(config, "memory", str, where), network=_field(config, "network", str, where),
        id=model_id,
    )
    try:
        validate_model(found)
    except UsageError as err:
        raise UsageError(f"{where}: {err}") from None
    return found


def _server(snapshot: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    srv = snapshot.get("server")
    if not isinstance(srv, Mapping) or not isinstance(srv.get("name"), str):
        raise UsageError(f"{where}: no server recorded")
    return srv
