"""The Rust MER's rows as mer's servers, models, weight vectors and access records, with
no database: what mer/services/mer_import.py then compares with mer's and writes."""

from __future__ import annotations

import uuid
from array import array
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mer.domain import ModelConfig, RunKind, RunRecord, RunStatus, Server, to_vector
from mer.errors import UsageError
from mer.services.mer_import_report import ImportReport, plural
from mer.services.surreal_source import RustMerCatalog
from mer.validation import check_params, validate_model, validate_server

__all__ = ["ACTOR", "DESCRIPTION", "WEIGHT_VECTOR", "Mapper", "ServerKey", "SourceModel"]

ACTOR = "import"
WEIGHT_VECTOR = "weights"
DESCRIPTION = "imported from the Rust MER"
# Run ids of imported ModelAccess rows whose uid is not a UUID: uuid5 of the uid in this.
_RUN_IDS = uuid.UUID("6d1b5a0e-4f0a-5c55-9d7e-6d6572696d70")
_BOOK_KEEPING = {"id", "uid", "createdAt", "lastUpdated"}
_CONN_KEYS = {"host": ("host", "ip"), "port": ("port",), "user": ("user", "username"),
              "password": ("pass", "password")}


@dataclass(frozen=True, slots=True)
class ServerKey:
    kind: str  # "local" or "ssh"
    host: str | None = None
    port: int | None = None
    user: str | None = None

    @property
    def name(self) -> str:
        """The name a new server gets: predictable from the key."""
        if self.kind == "local":
            return "local"
        return "-".join(["ssh", *([self.user] if self.user else []), str(self.host), str(self.port)])

    @property
    def address(self) -> str:
        return f"{self.user + '@' if self.user else ''}{self.host}:{self.port}"


@dataclass
class SourceModel:
    original: str
    conn: str
    server: ServerKey
    command: str
    train_command: str | None
    workdir: str | None
    parameters: dict[str, Any]
    name: str = ""
    renamed: str = ""
    weights: dict[str, array] = field(default_factory=dict)
    uids: set[str] = field(default_factory=set)  # the rows' uids: how ModelAccess may name it

    def config(self, server: str) -> ModelConfig:
        return ModelConfig(
            name=self.name, server=server, command=["sh", "-c", self.command],
            train_command=["sh", "-c", self.train_command] if self.train_command else None,
            mode="worker", framing="mer", workdir=self.workdir, description=DESCRIPTION)

    def content(self) -> tuple[Any, ...]:
        return (self.conn, self.server, self.command, self.train_command, self.workdir,
                repr(sorted(self.parameters.items(), key=lambda kv: kv[0])))


def _plain(value: Any) -> Any:
    """A SurrealDB value as JSON: datetimes in ISO form, record ids and others as text."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    table, ident = getattr(value, "table_name", None), getattr(value, "record_id", None)
    if table is not None and ident is not None:
        return f"{table}:{ident}"
    return str(value)


def _linked(value: Any) -> dict[str, Any] | None:
    """The fetched record(s) of a link field, merged; None when none was found."""
    records = value if isinstance(value, list) else [value]
    found = [r for r in records if isinstance(r, dict)]
    if not found:
        return None
    merged: dict[str, Any] = {}
    for record in found:
        merged.update(record)
    return merged


def _pick(record: dict[str, Any], key: str) -> Any:
    return next((record[k] for k in _CONN_KEYS[key] if record.get(k) not in (None, "")), None)


class Mapper:
    """The Rust MER's rows as mer's servers, models and access records (no database)."""

    def __init__(self, catalog: RustMerCatalog, report: ImportReport, with_history: bool) -> None:
        self.catalog, self.report, self.with_history = catalog, report, with_history
        self.models: list[SourceModel] = []
        self.passwords: set[ServerKey] = set()
        self.runs: list[tuple[str, RunRecord]] = []  # (original model name, record)

    def skip(self, what: str, why: str) -> None:
        self.report.add("skipped", what, "skip", why)

    def run(self) -> None:
        for row in self.catalog.models:
            self._model(row)
        self._name_models()
        self._weights()
        self._access()

    def _model(self, row: dict[str, Any]) -> None:
        name, conn = str(row.get("name") or ""), str(row.get("connType") or "").lower()
        what = f"AvailableModels '{name}' ({conn or 'no connType'})"
        if conn not in ("local", "ssh"):
            return self.skip(what, "connType must be local or ssh; fix the row in the source")
        params, conn_params = _linked(row.get("modelParams")), _linked(row.get("connTypeParams")) or {}
        if params is None:
            return self.skip(what, "its ModelParams record is missing; add it in the source")
        command, train = params.get("inferenceCommand"), params.get("trainCommand")
        if not isinstance(command, str) or not command.strip():
            return self.skip(what, "ModelParams has no inferenceCommand; add one in the source")
        key = ServerKey("local")
        if conn == "ssh":
            if _pick(conn_params, "host") is None:
                return self.skip(what, "ConnTypeParams has no host; add one in the source")
            port = _pick(conn_params, "port") or 22
            try:
                key = ServerKey("ssh", _pick(conn_params, "host"), int(port), _pick(conn_params, "user"))
            except (TypeError, ValueError):
                return self.skip(what, f"ConnTypeParams port {port!r} is not a number; fix it in the source")
            if _pick(conn_params, "password") is not None:
                self.passwords.add(key)
        extra = sorted(set(conn_params) - _BOOK_KEEPING - {k for ks in _CONN_KEYS.values() for k in ks})
        if extra:
            self.report.warnings.append(f"{what}: ConnTypeParams {', '.join(extra)} dropped (mer has no "
                                        f"place for them)")
        rest = {k: _plain(v) for k, v in params.items()
                if k not in _BOOK_KEEPING | {"inferenceCommand", "trainCommand", "modelPath"}}
        workdir = params.get("modelPath")
        model = SourceModel(name, conn, key, command,
                            train if isinstance(train, str) and train.strip() else None,
                            str(workdir) if workdir not in (None, "") else None, rest)
        model.name = name
        model.uids = {str(u) for u in (row.get("uid"), _plain(row.get("id"))) if u}
        try:
            validate_model(model.config(key.name))
            check_params(rest)
            if conn == "ssh":
                validate_server(Server(key.name, "ssh", host=key.host, port=key.port, user=key.user))
        except UsageError as err:
            return self.skip(what, f"{err} (fix it in the source)")
        self.models.append(model)

    def _name_models(self) -> None:
        """Distinct, predictable names: identical duplicates are imported once; models that
        share a name become NAME-CONNTYPE, then NAME-CONNTYPE-N in content order."""
        groups: dict[str, list[SourceModel]] = defaultdict(list)
        for model in self.models:
            groups[model.original].append(model)
        kept: list[SourceModel] = []
        for name, group in groups.items():
            by_content: dict[tuple[Any, ...], SourceModel] = {}
            for m in group:
                by_content.setdefault(m.content(), m).uids |= m.uids
            unique = list(by_content.values())
            if len(unique) < len(group):
                self.report.warnings.append(f"AvailableModels '{name}': "
                                            f"{plural(len(group) - len(unique), 'duplicate row')} "
                                            f"(same content) not imported again")
            if len(unique) > 1:
                conns = Counter(m.conn for m in unique)
                numbered: Counter[str] = Counter()
                for m in sorted(unique, key=lambda m: repr(m.content())):
                    m.name = f"{name}-{m.conn}"
                    if conns[m.conn] > 1:
                        numbered[m.conn] += 1
                        m.name += f"-{numbered[m.conn]}"
                    m.renamed = (f"renamed from '{name}': {len(unique)} models have that name "
                                 f"({', '.join(sorted(conns))})")
            kept += unique
        taken = {m.original for m in kept if not m.renamed}
        for m in kept:  # a made-up name must not take a name the source already uses
            if m.renamed:
                base, n = m.name, 1
                while m.name in taken:
                    n += 1
                    m.name = f"{base}-{n}"
                taken.add(m.name)
        self.models = kept

    def _weights(self) -> None:
        newest: dict[str, dict[str, Any]] = {}
        for row in self.catalog.weights:
            name = str(row.get("name") or "")
            stamp = str(row.get("lastUpdated") or "")
            if name not in newest or stamp > str(newest[name].get("lastUpdated") or ""):
                if name in newest:
                    self.report.warnings.append(f"ModelWeights '{name}': an older row is not imported")
                newest[name] = row
            else:
                self.report.warnings.append(f"ModelWeights '{name}': an older row is not imported")
        for name, row in newest.items():
            what = f"ModelWeights '{name}'"
            targets = [m for m in self.models if m.original == name]
            if not targets:
                self.skip(what, "no imported model has that name")
                continue
            try:
                vector = to_vector(row.get("weights") or [])
            except (TypeError, ValueError) as err:
                self.skip(what, f"weights must be a flat list of finite numbers: {err}")
                continue
            if not vector:
                # A SCHEMAFULL table keeps an array's items only under a `weights.*` field.
                self.skip(what, "weights is empty (does the source define `weights.*`?)")
                continue
            for model in targets:
                model.weights[WEIGHT_VECTOR] = vector

    def _access(self) -> None:
        if not self.with_history:
            if self.catalog.access:
                self.report.warnings.append(f"{len(self.catalog.access)} ModelAccess rows not imported "
                                            f"(--with-history imports them into the access log)")
            return
        for row in self.catalog.access:
            model, start, stop = str(row.get("model") or ""), row.get("startAccess"), row.get("stopAccess")
            uid = str(row.get("uid") or _plain(row.get("id")))
            if not isinstance(start, datetime):
                self.skip(f"ModelAccess '{uid}'", "startAccess is not a datetime")
                continue
            try:
                run_id = uuid.UUID(uid)
            except ValueError:
                run_id = uuid.uuid5(_RUN_IDS, uid)
            self.runs.append((model, RunRecord(
                id=run_id, model=model, version="1", server="unknown", os_user=ACTOR, kind=RunKind.RUN,
                status=RunStatus.SUCCEEDED, started_at=start,
                finished_at=stop if isinstance(stop, datetime) else start)))
