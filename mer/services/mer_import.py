"""Import the original Rust MER's catalog (as mer/services/surreal_source.py reads it)
into mer: a dry run reports the mapping entry by entry; ``apply`` writes it in one
transaction, audited as the import.

The mapping:
- each ``AvailableModels`` row is a model ``NAME@1`` in worker mode with the MER framing;
  ``ModelParams.inferenceCommand`` and ``trainCommand`` are shell strings, so they run as
  ``sh -c STRING``; ``modelPath`` is the working directory; other keys are parameters;
- ``connType`` local runs on mer's local server; ssh on an ssh server per host, port and
  user (an existing one with the same three is reused). A stored password is dropped
  with a warning: mer signs in with keys and the agent only. Host keys are not trusted
  here: the report says to run ``server trust``;
- models sharing a name get ``NAME-CONNTYPE`` (and ``-1``, ``-2``... when those clash too,
  in an order set by their content), so the same source always gives the same names;
- a ``ModelWeights`` row (its ``name`` is a model's) is the vector ``weights``, revision 1
  by author ``import``; with history, ``ModelAccess`` rows become finished access-log
  records (user ``import``; the Rust MER logged no exit status) whose ids come from the
  rows' uids, so importing them twice adds nothing.

Importing the same source twice changes nothing. A name that mer already holds with
other content is a conflict, reported and skipped unless ``overwrite``.

Imports: mer.domain, mer.db.interfaces, mer.validation, mer.errors and the reader's
catalog type.
"""

from __future__ import annotations

import dataclasses
import getpass
import shlex
import uuid
from array import array
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mer.db.interfaces import UnitOfWork, UnitOfWorkFactory
from mer.domain import (
    AuditEntry,
    ModelConfig,
    RunKind,
    RunRecord,
    RunStatus,
    Server,
    to_vector,
    vector_sha256,
)
from mer.errors import UsageError
from mer.services.surreal_source import RustMerCatalog
from mer.validation import check_params, validate_model, validate_server

__all__ = ["ACTOR", "WEIGHT_VECTOR", "Entry", "ImportReport", "import_mer"]

ACTOR = "import"
WEIGHT_VECTOR = "weights"
DESCRIPTION = "imported from the Rust MER"
# Run ids of imported ModelAccess rows whose uid is not a UUID: uuid5 of the uid in this.
_RUN_IDS = uuid.UUID("6d1b5a0e-4f0a-5c55-9d7e-6d6572696d70")
_BOOK_KEEPING = {"id", "uid", "createdAt", "lastUpdated"}
_CONN_KEYS = {"host": ("host", "ip"), "port": ("port",), "user": ("user", "username"),
              "password": ("pass", "password")}
_OWNED = ("server", "command", "train_command", "mode", "framing", "workdir")
CHANGES = ("add", "overwrite")
_KINDS = ("server", "model", "weights", "history", "skipped")
_NOUNS = {"server": "server", "model": "model", "weights": "weight vector", "history": "access-log row"}


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


@dataclass(frozen=True, slots=True)
class _ServerKey:
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
class _Model:
    original: str
    conn: str
    server: _ServerKey
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
            return ", ".join(_plural(self.count(action, kind), noun) for kind, noun in _NOUNS.items()
                             if self.count(action, kind))

        parts = []
        for action, done, todo in (("add", "added", "to add"), ("overwrite", "overwritten", "to overwrite")):
            if self.count(action):
                parts.append(f"{done if self.applied else todo}: {counted(action)}")
        if self.count("conflict"):
            parts.append(f"{_plural(self.count('conflict'), 'conflict')} skipped (--overwrite replaces them)")
        if self.count("skip"):
            parts.append(f"{self.count('skip')} skipped")
        parts.append(f"{self.count('unchanged') + self.count('reuse')} unchanged")
        if not self.changed:
            head = "nothing to change"
        else:
            head = "imported" if self.applied else "dry run, nothing written (--apply writes it)"
        return f"{head}: " + "; ".join(parts)


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


class _Mapper:
    """The Rust MER's rows as mer's servers, models and access records (no database)."""

    def __init__(self, catalog: RustMerCatalog, report: ImportReport, with_history: bool) -> None:
        self.catalog, self.report, self.with_history = catalog, report, with_history
        self.models: list[_Model] = []
        self.passwords: set[_ServerKey] = set()
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
        key = _ServerKey("local")
        if conn == "ssh":
            if _pick(conn_params, "host") is None:
                return self.skip(what, "ConnTypeParams has no host; add one in the source")
            port = _pick(conn_params, "port") or 22
            try:
                key = _ServerKey("ssh", _pick(conn_params, "host"), int(port), _pick(conn_params, "user"))
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
        model = _Model(name, conn, key, command, train if isinstance(train, str) and train.strip() else None,
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
        groups: dict[str, list[_Model]] = defaultdict(list)
        for model in self.models:
            groups[model.original].append(model)
        kept: list[_Model] = []
        for name, group in groups.items():
            by_content: dict[tuple[Any, ...], _Model] = {}
            for m in group:
                by_content.setdefault(m.content(), m).uids |= m.uids
            unique = list(by_content.values())
            if len(unique) < len(group):
                self.report.warnings.append(f"AvailableModels '{name}': "
                                            f"{_plural(len(group) - len(unique), 'duplicate row')} "
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


def _quote(command: str) -> str:
    return "sh -c " + shlex.quote(command)


class _Writer:
    """Compares the mapping with what mer holds and, when applying, writes it."""

    def __init__(self, uow: UnitOfWork, report: ImportReport, *, apply: bool, overwrite: bool,
                 actor: str) -> None:
        self.uow, self.report, self.apply, self.overwrite = uow, report, apply, overwrite
        self.actor = f"{ACTOR}:{actor}"
        # a Rust MER model name or row uid -> the mer models it became: (name, server, id)
        self.imported: dict[str, list[tuple[str, str, uuid.UUID | None]]] = defaultdict(list)

    async def audit(self, action: str, target: str, before: Any, after: Any) -> None:
        if self.apply:
            await self.uow.audit.append(AuditEntry(actor=self.actor, action=action, target=target,
                                                   before=before, after=after))

    async def servers(self, keys: Iterable[_ServerKey], passwords: set[_ServerKey]) -> dict[_ServerKey, str]:
        """The mer server each key runs on (keys in conflict are left out)."""
        existing = await self.uow.servers.list()
        names: dict[_ServerKey, str] = {}
        for key in sorted(set(keys), key=lambda k: (k.kind, k.name)):
            name = await self._server(key, existing)
            if name is None:
                continue
            names[key] = name
            if key in passwords:
                self.report.warnings.append(
                    f"server {name} ({key.address}): the Rust MER's stored password is dropped; mer signs "
                    f"in with keys and the SSH agent only (set identity_file or use ssh-agent)")
            if key.kind == "ssh":
                self.report.trust.append(name)
        return names

    async def _server(self, key: _ServerKey, existing: list[Server]) -> str | None:
        def same(s: Server) -> bool:
            if key.kind == "local":
                return s.kind == "local"
            return (s.kind, s.host, s.port or 22, s.user) == ("ssh", key.host, key.port, key.user)

        what = "the local machine" if key.kind == "local" else f"ssh {key.address}"
        matches = sorted((s for s in existing if same(s)), key=lambda s: (s.name != key.name, s.name))
        if matches:
            found = matches[0].name
            self.report.add("server", found, "unchanged" if found == key.name else "reuse", what)
            return found
        wanted = Server(name=key.name, kind=key.kind, host=key.host, port=key.port, user=key.user)
        taken = next((s for s in existing if s.name == key.name), None)
        image = {"kind": key.kind, "host": key.host, "port": key.port, "user": key.user}
        if taken is None:
            self.report.add("server", key.name, "add", what)
            if self.apply:
                await self.uow.servers.add(wanted)
                await self.audit("server.add", f"server {key.name}", None, image)
            return key.name
        before = {"kind": taken.kind, "host": taken.host, "port": taken.port, "user": taken.user}
        if not self.overwrite:
            self.report.add("server", key.name, "conflict",
                            f"mer's server {key.name} is {taken.kind} {taken.host or ''}, not {what}; "
                            f"skipped with its models")
            return None
        self.report.add("server", key.name, "overwrite", f"{taken.kind} {taken.host or ''} -> {what}")
        if self.apply:
            await self.uow.servers.update(dataclasses.replace(
                taken, kind=key.kind, host=key.host, port=key.port, user=key.user))
            await self.audit("server.update", f"server {key.name}", before, image)
        return key.name

    async def model(self, m: _Model, server: str | None) -> None:
        ref = f"{m.name}@1"
        if server is None:
            self.report.add("model", ref, "skip", f"its server {m.server.name} is a conflict")
            return
        config = m.config(server)
        detail = f"on {server}: {_quote(m.command)}" + (f" in {m.workdir}" if m.workdir else "")
        if m.train_command:
            detail += f"; train: {_quote(m.train_command)}"
        if m.parameters:
            detail += f"; parameters: {', '.join(sorted(m.parameters))}"
        if m.renamed:
            detail += f"; {m.renamed}"
        current = await self.uow.models.get(m.name, "1")
        if current is None:
            self.report.add("model", ref, "add", detail)
            stored = await self._add_model(config, m)
            self._register(m, server, stored.id if stored else None)
            for vector, values in m.weights.items():
                self.report.add("weights", f"{ref}/{vector}", "add", f"revision 1, {len(values)} values")
                if stored is not None:
                    await self._append(stored, vector, values, None)
            return
        diffs = [k for k in _OWNED if getattr(current, k) != getattr(config, k)]
        params = await self.uow.parameters.get(current.id)
        if params.values != m.parameters:
            diffs.append("parameters")
        stale = {}
        for vector, values in m.weights.items():
            latest = await self.uow.weights.get(current.id, vector)
            if latest is None or latest.sha256 != vector_sha256(values):
                stale[vector] = latest.revision if latest else None
                diffs.append(f"weights {vector}")
        if not diffs:
            self.report.add("model", ref, "unchanged", detail)
            self._register(m, server, current.id)
            return
        if not self.overwrite:
            self.report.add("model", ref, "conflict", f"mer's {ref} differs in {', '.join(diffs)}; skipped")
            return
        self.report.add("model", ref, "overwrite", f"{', '.join(diffs)} replaced; {detail}")
        self._register(m, server, current.id)
        for vector in stale:
            self.report.add("weights", f"{ref}/{vector}", "overwrite", "a new revision")
        if not self.apply:
            return
        before = {k: getattr(current, k) for k in _OWNED}
        updated = await self.uow.models.update(dataclasses.replace(
            current, **{k: getattr(config, k) for k in _OWNED}))
        await self.audit("model.update", f"model {ref}", before, {k: getattr(updated, k) for k in _OWNED})
        if params.values != m.parameters:
            old = params.values
            params.values = m.parameters
            await self.uow.parameters.set(params)
            await self.audit("param.replace", f"model {ref}", old, m.parameters)
        for vector, revision in stale.items():
            await self._append(updated, vector, m.weights[vector], revision)

    def _register(self, m: _Model, server: str, model_id: uuid.UUID | None) -> None:
        """What ModelAccess rows find this model by: its Rust MER name or a row's uid."""
        for key in (m.original, *m.uids):
            self.imported[key].append((m.name, server, model_id))

    async def _add_model(self, config: ModelConfig, m: _Model) -> ModelConfig | None:
        if not self.apply:
            return None
        stored = await self.uow.models.add(config)
        await self.audit("model.add", f"model {config.ref}", None,
                         {k: getattr(stored, k) for k in (*_OWNED, "description")})
        if m.parameters:
            params = await self.uow.parameters.get(stored.id)
            params.values = m.parameters
            await self.uow.parameters.set(params)
            await self.audit("param.replace", f"model {config.ref}", {}, m.parameters)
        return stored

    async def _append(self, model: ModelConfig, vector: str, values: array, before: int | None) -> None:
        # base: the revision read as the newest, so a vector stored meanwhile is a conflict
        rev = await self.uow.weights.append(model.id, vector, values, author=ACTOR, note=DESCRIPTION,
                                            base=before or 0)
        await self.audit("weights.set", f"weights {model.ref}/{vector}", before, rev.revision)

    async def history(self, runs: list[tuple[str, RunRecord]]) -> None:
        by_model: dict[str, list[RunRecord]] = defaultdict(list)
        for original, record in runs:
            targets = self.imported.get(original, [])
            if len(targets) == 1:
                record.model, record.server, record.model_id = targets[0]
            by_model[record.model].append(record)
        for name, records in sorted(by_model.items()):
            new = [r for r in records if await self.uow.runs.get(r.id) is None]
            note = "" if name in {t[0] for ts in self.imported.values() for t in ts} else (
                "; no single imported model has that name: recorded under it, server unknown")
            if new:
                self.report.add("history", name, "add", f"{len(new)} access-log rows{note}", len(new))
            if len(new) < len(records):
                old = len(records) - len(new)
                self.report.add("history", name, "unchanged", f"{old} access-log rows already imported", old)
            if self.apply:
                for record in new:
                    await self.uow.runs.start(record)


async def import_mer(catalog: RustMerCatalog, uow_factory: UnitOfWorkFactory, *, apply: bool = False,
                     overwrite: bool = False, with_history: bool = False,
                     actor: str | None = None) -> ImportReport:
    """Map ``catalog`` into mer and compare it with the database; with ``apply``, write it
    in one transaction. Returns the report, entry by entry. Raises StorageError."""
    report = ImportReport(source=catalog.source, applied=apply)
    mapper = _Mapper(catalog, report, with_history)
    mapper.run()
    async with uow_factory() as uow:
        writer = _Writer(uow, report, apply=apply, overwrite=overwrite, actor=actor or getpass.getuser())
        servers = await writer.servers((m.server for m in mapper.models), mapper.passwords)
        for model in sorted(mapper.models, key=lambda m: m.name):
            await writer.model(model, servers.get(model.server))
        await writer.history(mapper.runs)
        if apply and report.changed:
            await writer.audit("import.mer", f"import {catalog.source}"[:300], None, report.counts())
            await uow.commit()
    return report
