"""Load a TOML model catalog (servers, models, parameters, initial weights) into the
database, idempotently and in one transaction.

Loading the same file twice changes nothing; a changed entry updates its row (its
row_version goes up); a weight vector gets a new revision only when its values changed.
Every change is written to the audit log as actor ``catalog``. A malformed file raises
ConfigError naming the file, the entry and the problem, and nothing is written.

    [[servers]]
    name = "local"
    kind = "local"                       # host, port, user, identity_file, known_hosts,
                                         # max_runs, enabled
    [[models]]
    name = "linear"
    version = "1"
    server = "local"
    command = ["python3", "${CATALOG_DIR}/models/linear.py"]
    mode = "oneshot"                     # or "worker"; framing = "jsonl" | "mer"
                                         # a container model (server kind "container",
                                         # engine "podman" | "docker"): image, cpus,
                                         # memory, network; command optional
    [models.parameters]
    bias = 0.5
    [models.weights]
    w = [0.5, 2.0, -1.0]

``${CATALOG_DIR}`` in command, train_command and workdir is the catalog's directory.
"""

from __future__ import annotations

import dataclasses
import getpass
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mer.db.interfaces import UnitOfWork, UnitOfWorkFactory
from mer.domain import FRAMINGS, MODES, AuditEntry, ModelConfig, Server, to_vector, vector_sha256
from mer.errors import ConfigError, MerError, UsageError
from mer.validation import check_params, validate_model, validate_server

__all__ = ["CatalogReport", "load_catalog", "parse_catalog"]

ACTOR = "catalog"

_SERVER_FIELDS: dict[str, tuple[type, ...]] = {
    "name": (str,), "kind": (str,), "host": (str,), "port": (int,), "user": (str,),
    "identity_file": (str,), "known_hosts": (str,), "max_runs": (int,), "enabled": (bool,),
    "engine": (str,),
}
_MODEL_FIELDS: dict[str, tuple[type, ...]] = {
    "name": (str,), "version": (str, int), "server": (str,), "command": (list,),
    "train_command": (list,), "mode": (str,), "framing": (str,), "workdir": (str,),
    "env": (dict,), "timeout": (int, float), "description": (str,), "enabled": (bool,),
    "parameters": (dict,), "weights": (dict,), "image": (str,), "cpus": (int, float),
    "memory": (str,), "network": (str,),
}


@dataclass
class CatalogReport:
    added: dict[str, int] = field(default_factory=lambda: {"servers": 0, "models": 0})
    updated: dict[str, int] = field(default_factory=lambda: {"servers": 0, "models": 0,
                                                              "parameters": 0})
    unchanged: int = 0
    weight_revisions: int = 0

    def summary(self) -> str:
        return (
            f"servers: {self.added['servers']} added, {self.updated['servers']} updated; "
            f"models: {self.added['models']} added, {self.updated['models']} updated; "
            f"parameters: {self.updated['parameters']} changed; "
            f"weights: {self.weight_revisions} new revisions; {self.unchanged} unchanged"
        )


@dataclass
class _ModelEntry:
    config: ModelConfig
    parameters: dict[str, Any] | None
    weights: dict[str, Any]


def _check_fields(where: str, entry: Any, spec: dict[str, tuple[type, ...]]) -> None:
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: must be a table")
    for key, value in entry.items():
        if key not in spec:
            raise ValueError(f"{where}: unknown key '{key}' (known: {', '.join(spec)})")
        types = spec[key]
        if isinstance(value, bool) and bool not in types:
            raise ValueError(f"{where}: {key} must be {types[0].__name__}, not a boolean")
        if not isinstance(value, types):
            raise ValueError(f"{where}: {key} must be {types[0].__name__}, not {type(value).__name__}")
    if "name" not in entry or not entry["name"]:
        raise ValueError(f"{where}: name is required")


def _argv(where: str, key: str, value: list[Any], catalog_dir: str) -> list[str]:
    if not value or not all(isinstance(a, str) for a in value):
        raise ValueError(f"{where}: {key} must be a non-empty list of strings (an argv)")
    return [a.replace("${CATALOG_DIR}", catalog_dir) for a in value]


def parse_catalog(path: Path) -> tuple[list[Server], list[_ModelEntry]]:
    """Read and validate the file; raises ConfigError naming the file and entry."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the catalog: {err.strerror or err}") from err
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from err
    try:
        return _parse(data, str(path.resolve().parent))
    except ValueError as err:
        raise ConfigError(f"{path}: {err}") from err


def _parse(data: dict[str, Any], catalog_dir: str) -> tuple[list[Server], list[_ModelEntry]]:
    unknown = set(data) - {"servers", "models"}
    if unknown:
        raise ValueError(f"unknown top-level key(s) {sorted(unknown)}; use [[servers]] and [[models]]")
    servers: list[Server] = []
    for i, entry in enumerate(data.get("servers", [])):
        where = f"servers[{i}]" + (f" '{entry.get('name')}'" if isinstance(entry, dict) else "")
        _check_fields(where, entry, _SERVER_FIELDS)
        if entry["name"] in {s.name for s in servers}:
            raise ValueError(f"{where}: server '{entry['name']}' is listed twice")
        server = Server(**entry)
        _apply_rules(where, validate_server, server)
        servers.append(server)

    models: list[_ModelEntry] = []
    seen: set[tuple[str, str]] = set()
    for i, entry in enumerate(data.get("models", [])):
        ref = f"{entry.get('name')}@{entry.get('version', '1')}" if isinstance(entry, dict) else ""
        where = f"models[{i}] '{ref}'"
        _check_fields(where, entry, _MODEL_FIELDS)
        entry = dict(entry)
        params = entry.pop("parameters", None)
        weights = entry.pop("weights", {})
        entry["version"] = str(entry.get("version", "1"))
        if (entry["name"], entry["version"]) in seen:
            raise ValueError(f"{where}: model '{ref}' is listed twice")
        seen.add((entry["name"], entry["version"]))
        for key in ("server", "command"):
            if key not in entry and not (key == "command" and "image" in entry):
                raise ValueError(f"{where}: {key} is required")
        if "command" in entry or "image" not in entry:
            entry["command"] = _argv(where, "command", entry["command"], catalog_dir)
        else:
            entry["command"] = []  # a container model: its image's entrypoint runs
        if "cpus" in entry:
            entry["cpus"] = float(entry["cpus"])
        if "train_command" in entry:
            entry["train_command"] = _argv(where, "train_command", entry["train_command"], catalog_dir)
        if "workdir" in entry:
            entry["workdir"] = entry["workdir"].replace("${CATALOG_DIR}", catalog_dir)
        if entry.get("mode", "oneshot") not in MODES:
            raise ValueError(f"{where}: mode must be one of {', '.join(MODES)}")
        if entry.get("framing", "jsonl") not in FRAMINGS:
            raise ValueError(f"{where}: framing must be one of {', '.join(FRAMINGS)}")
        if not all(isinstance(v, str) for v in entry.get("env", {}).values()):
            raise ValueError(f"{where}: env values must be strings")
        if "timeout" in entry:
            entry["timeout"] = float(entry["timeout"])
        for name, values in weights.items():
            if not isinstance(values, list):
                raise ValueError(f"{where}: weights.{name} must be a list of numbers")
            try:
                weights[name] = to_vector(values)
            except ValueError as err:
                raise ValueError(f"{where}: weights.{name}: {err}") from None
        model = ModelConfig(**entry)
        _apply_rules(where, validate_model, model)
        _apply_rules(where, check_params, params or {})
        models.append(_ModelEntry(model, params, weights))
    return servers, models


def _apply_rules(where: str, rule: Any, value: Any) -> None:
    """The services' own rules (mer/validation.py), reported like the file's other errors."""
    try:
        rule(value)
    except UsageError as err:
        raise ValueError(f"{where}: {err}") from None


_SERVER_COMPARE = ("kind", "host", "port", "user", "identity_file", "known_hosts", "max_runs",
                   "enabled", "engine")
_MODEL_COMPARE = ("server", "command", "train_command", "mode", "framing", "workdir", "env",
                  "timeout", "description", "enabled", "image", "cpus", "memory", "network")


def _image(obj: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: getattr(obj, k) for k in keys}


async def load_catalog(path: Path, uow_factory: UnitOfWorkFactory) -> CatalogReport:
    """Load ``path`` into the database in one transaction; returns what changed."""
    servers, models = parse_catalog(path)
    report = CatalogReport()
    async with uow_factory() as uow:
        try:
            for server in servers:
                await _load_server(uow, server, report)
            for entry in models:
                await _load_model(uow, entry, report)
        except MerError as err:
            raise ConfigError(f"{path}: {err}") from err
        await uow.commit()
    return report


async def _audit(uow: UnitOfWork, action: str, target: str, before: Any, after: Any) -> None:
    await uow.audit.append(AuditEntry(actor=f"{ACTOR}:{getpass.getuser()}", action=action,
                                      target=target, before=before, after=after))


async def _load_server(uow: UnitOfWork, server: Server, report: CatalogReport) -> None:
    current = await uow.servers.get(server.name)
    if current is None:
        await uow.servers.add(server)
        report.added["servers"] += 1
        await _audit(uow, "server.add", f"server {server.name}", None,
                     _image(server, _SERVER_COMPARE))
    elif _image(current, _SERVER_COMPARE) != _image(server, _SERVER_COMPARE):
        await uow.servers.update(dataclasses.replace(
            server, id=current.id, row_version=current.row_version))
        report.updated["servers"] += 1
        await _audit(uow, "server.update", f"server {server.name}",
                     _image(current, _SERVER_COMPARE), _image(server, _SERVER_COMPARE))
    else:
        report.unchanged += 1


async def _load_model(uow: UnitOfWork, entry: _ModelEntry, report: CatalogReport) -> None:
    model = entry.config
    current = await uow.models.get(model.name, model.version)
    if current is None:
        current = await uow.models.add(model)
        report.added["models"] += 1
        await _audit(uow, "model.add", f"model {model.ref}", None, _image(model, _MODEL_COMPARE))
    elif _image(current, _MODEL_COMPARE) != _image(model, _MODEL_COMPARE):
        before = _image(current, _MODEL_COMPARE)
        current = await uow.models.update(dataclasses.replace(
            model, id=current.id, row_version=current.row_version))
        report.updated["models"] += 1
        await _audit(uow, "model.update", f"model {model.ref}", before,
                     _image(model, _MODEL_COMPARE))
    else:
        report.unchanged += 1

    if entry.parameters is not None:
        params = await uow.parameters.get(current.id)
        if params.values != entry.parameters:
            before = params.values
            params.values = entry.parameters
            await uow.parameters.set(params)
            report.updated["parameters"] += 1
            await _audit(uow, "param.replace", f"model {model.ref}", before, entry.parameters)

    for name, values in entry.weights.items():
        latest = await uow.weights.get(current.id, name)
        if latest is None or latest.sha256 != vector_sha256(values):
            rev = await uow.weights.append(current.id, name, values, author=ACTOR,
                                           note="loaded from the catalog")
            report.weight_revisions += 1
            await _audit(uow, "weights.set", f"weights {model.ref}/{name}",
                         latest.revision if latest else None, rev.revision)
