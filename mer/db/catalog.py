"""Load a TOML model catalog (servers, models, parameters, initial weights) into the
database: the catalog seeds, it does not overwrite.

A load adds what is missing and changes nothing that exists: a server, model, parameter
or weight vector already in the database stays exactly as it is (an admin's live edits,
a disabled model), and one that a load has offered before (table catalog_seeds) is not
offered again, so what an admin removed stays removed. Loading the same file twice
changes nothing. Overwriting is `mer-migrate sync` (mer/services/catalog_sync.py), an
explicit, audited admin act.

Every entry goes through the shell's rule set (mer/validation.py) first: a bad entry
raises ConfigError naming the file, the entry and the field, and nothing is written.
What a load adds is written to the audit log as actor ``catalog:<os user>``.

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

import getpass
import tomllib
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mer.db.interfaces import UnitOfWork, UnitOfWorkFactory
from mer.domain import FRAMINGS, MODES, AuditEntry, ModelConfig, Server, to_vector
from mer.errors import ConfigError, MerError, UsageError
from mer.validation import InvalidField, check_params, check_text, validate_model, validate_server

__all__ = ["Catalog", "CatalogReport", "ModelEntry", "ServerEntry", "load_catalog",
           "parse_catalog", "seed_keys"]

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


@dataclass(frozen=True, slots=True)
class ServerEntry:
    server: Server
    stated: frozenset[str]  # the keys the file gives (sync compares only those)
    where: str  # the entry, for messages: "servers[0] 'gpu1'"


@dataclass(frozen=True, slots=True)
class ModelEntry:
    config: ModelConfig
    parameters: dict[str, Any]
    weights: dict[str, array]
    stated: frozenset[str]
    where: str  # "models[2] 'linear@1'"


@dataclass(frozen=True, slots=True)
class Catalog:
    path: Path
    servers: list[ServerEntry]
    models: list[ModelEntry]


def seed_keys(catalog: Catalog) -> Iterator[tuple[str, str]]:
    """Every entry of the catalog as a catalog_seeds key."""
    for s in catalog.servers:
        yield "server", s.server.name
    for m in catalog.models:
        ref = m.config.ref
        yield "model", ref
        yield from (("param", f"{ref}/{key}") for key in m.parameters)
        yield from (("weights", f"{ref}/{name}") for name in m.weights)


@dataclass
class CatalogReport:
    added: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("servers", "models", "parameters", "weights"), 0))
    present: int = 0  # entries already in the database, left as they are
    removed: list[str] = field(default_factory=list)  # offered before, since removed

    def summary(self) -> str:
        a = self.added
        text = (f"servers: {a['servers']} added; models: {a['models']} added; "
                f"parameters: {a['parameters']} added; weight vectors: {a['weights']} added; "
                f"{self.present} already there, left as they are")
        if self.removed:
            text += (f"; {len(self.removed)} removed since an earlier load, not restored "
                     f"({', '.join(self.removed)}; `mer-migrate sync` restores them)")
        return text


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


def parse_catalog(path: Path, kinds: Iterable[str] | None = None) -> Catalog:
    """Read and validate the file with the shell's rules (``kinds``: the server kinds that
    have an executor; None: not checked). Raises ConfigError naming the file, the entry
    and the field."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the catalog: {err.strerror or err}") from err
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from err
    try:
        servers, models = _parse(data, str(path.resolve().parent), kinds)
    except ValueError as err:
        raise ConfigError(f"{path}: {err}") from err
    return Catalog(path, servers, models)


def _parse(data: dict[str, Any], catalog_dir: str, kinds: Iterable[str] | None,
           ) -> tuple[list[ServerEntry], list[ModelEntry]]:
    unknown = set(data) - {"servers", "models"}
    if unknown:
        raise ValueError(f"unknown top-level key(s) {sorted(unknown)}; use [[servers]] and [[models]]")
    for table in ("servers", "models"):
        if not isinstance(data.get(table, []), list):
            raise ValueError(f"{table} must be an array of tables: [[{table}]]")
    kinds = None if kinds is None else list(kinds)
    servers: list[ServerEntry] = []
    for i, entry in enumerate(data.get("servers", [])):
        where = f"servers[{i}]" + (f" '{entry.get('name')}'" if isinstance(entry, dict) else "")
        _check_fields(where, entry, _SERVER_FIELDS)
        if entry["name"] in {s.server.name for s in servers}:
            raise ValueError(f"{where}: server '{entry['name']}' is listed twice")
        server = Server(**entry)
        _apply_rules(where, validate_server, server, kinds)
        servers.append(ServerEntry(server, frozenset(entry), where))

    models: list[ModelEntry] = []
    seen: set[tuple[str, str]] = set()
    for i, entry in enumerate(data.get("models", [])):
        ref = f"{entry.get('name')}@{entry.get('version', '1')}" if isinstance(entry, dict) else ""
        where = f"models[{i}] '{ref}'"
        _check_fields(where, entry, _MODEL_FIELDS)
        entry = dict(entry)
        stated = frozenset(entry) - {"parameters", "weights"}
        params = entry.pop("parameters", {})
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
            if not name:
                raise ValueError(f"{where}: weights: a vector needs a name")
            _apply_rules(where, check_text, f"weights.{name!r}", name)  # repr: one line
            if not isinstance(values, list):
                raise ValueError(f"{where}: weights.{name} must be a list of numbers")
            try:
                weights[name] = to_vector(values)
            except ValueError as err:
                raise ValueError(f"{where}: weights.{name}: {err}") from None
        model = ModelConfig(**entry)
        _apply_rules(where, validate_model, model)
        _apply_rules(where, check_params, params)
        models.append(ModelEntry(model, params, weights, stated, where))
    return servers, models


def _apply_rules(where: str, rule: Any, *args: Any) -> None:
    """The services' own rules (mer/validation.py), reported like the file's other errors:
    the entry, then the field it names."""
    try:
        rule(*args)
    except InvalidField as err:
        message = str(err)
        if not message.startswith(err.field):
            message = f"{err.field}: {message}"
        raise ValueError(f"{where}: {message}") from None
    except UsageError as err:
        raise ValueError(f"{where}: {err}") from None


async def load_catalog(path: Path, uow_factory: UnitOfWorkFactory,
                       kinds: Iterable[str] | None = None) -> CatalogReport:
    """Add what the catalog at ``path`` has and the database lacks, in one transaction;
    change nothing that exists and restore nothing offered before. Returns what it did.
    Raises ConfigError (naming file, entry and field) for a bad catalog."""
    catalog = parse_catalog(path, kinds)
    report = CatalogReport()
    async with uow_factory() as uow:
        seeded = await uow.seeds.all()
        loader = _Loader(uow, seeded, report)
        try:
            for entry in catalog.servers:
                await loader.server(entry)
            for model in catalog.models:
                await loader.model(model)
        except MerError as err:
            raise ConfigError(f"{path}: {err}") from err
        await uow.seeds.add(seed_keys(catalog))
        await uow.commit()
    return report


@dataclass
class _Loader:
    uow: UnitOfWork
    seeded: set[tuple[str, str]]
    report: CatalogReport

    async def _audit(self, action: str, target: str, after: Any, before: Any = None) -> None:
        await self.uow.audit.append(AuditEntry(actor=f"{ACTOR}:{getpass.getuser()}",
                                               action=action, target=target, before=before,
                                               after=after))

    def _gone(self, kind: str, key: str) -> bool:
        """Offered before and not there now: removed, and stays removed."""
        if (kind, key) in self.seeded:
            self.report.removed.append(f"{kind} {key}")
            return True
        return False

    async def server(self, entry: ServerEntry) -> None:
        server = entry.server
        if await self.uow.servers.get(server.name) is not None:
            self.report.present += 1
        elif not self._gone("server", server.name):
            stored = await self.uow.servers.add(server)
            self.report.added["servers"] += 1
            await self._audit("server.add", f"server {server.name}", _server_image(stored))

    async def model(self, entry: ModelEntry) -> None:
        model = entry.config
        current = await self.uow.models.get(model.name, model.version)
        if current is None:
            if self._gone("model", model.ref):
                return
            if await self.uow.servers.get(model.server) is None:
                if ("server", model.server) in self.seeded:  # an admin removed it
                    self.report.removed.append(f"model {model.ref} (its server {model.server})")
                    return
                raise UsageError(f"{entry.where}: server: no server '{model.server}' in the "
                                 "catalog or the database")
            current = await self.uow.models.add(model)
            self.report.added["models"] += 1
            await self._audit("model.add", f"model {model.ref}", _model_image(current))
        else:
            self.report.present += 1
        await self._parameters(current, entry.parameters)
        for name, values in entry.weights.items():
            await self._weights(current, name, values)

    async def _parameters(self, model: ModelConfig, wanted: dict[str, Any]) -> None:
        params = await self.uow.parameters.get(model.id)
        new = {k: v for k, v in wanted.items()
               if k not in params.values and not self._gone("param", f"{model.ref}/{k}")}
        if not new:
            return
        params.values = {**params.values, **new}
        await self.uow.parameters.set(params)
        self.report.added["parameters"] += len(new)
        await self._audit("param.set", f"model {model.ref}", new, before=dict.fromkeys(new))

    async def _weights(self, model: ModelConfig, name: str, values: array) -> None:
        if await self.uow.weights.get(model.id, name) is not None:
            return
        if self._gone("weights", f"{model.ref}/{name}"):
            return
        rev = await self.uow.weights.append(model.id, name, values, author=ACTOR,
                                            note="loaded from the catalog", base=0)
        self.report.added["weights"] += 1
        await self._audit("weights.set", f"weights {model.ref}/{name}",
                          {"revision": rev.revision, "sha256": rev.sha256, "length": rev.length,
                           "note": "loaded from the catalog"})


def _server_image(s: Server) -> dict[str, Any]:
    return {k: getattr(s, k) for k in ("name", "kind", "host", "port", "user", "identity_file",
                                       "known_hosts", "max_runs", "enabled")}


def _model_image(m: ModelConfig) -> dict[str, Any]:
    return {k: getattr(m, k) for k in ("name", "version", "server", "command", "train_command",
                                       "mode", "framing", "workdir", "env", "timeout",
                                       "description", "enabled")}
