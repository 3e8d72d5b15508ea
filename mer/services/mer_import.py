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

The mapping itself is mer/services/mer_import_mapping.py (no database) and the report
mer/services/mer_import_report.py; this module compares the mapping with what mer holds
and writes it.
"""

from __future__ import annotations

import dataclasses
import getpass
import shlex
import uuid
from array import array
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from mer.db.interfaces import UnitOfWork, UnitOfWorkFactory
from mer.domain import AuditEntry, ModelConfig, RunRecord, Server, vector_sha256
from mer.services.mer_import_mapping import (
    ACTOR,
    DESCRIPTION,
    WEIGHT_VECTOR,
    Mapper,
    ServerKey,
    SourceModel,
)
from mer.services.mer_import_report import Entry, ImportReport
from mer.services.surreal_source import RustMerCatalog

__all__ = ["ACTOR", "WEIGHT_VECTOR", "Entry", "ImportReport", "import_mer"]

_OWNED = ("server", "command", "train_command", "mode", "framing", "workdir")


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

    async def servers(self, keys: Iterable[ServerKey], passwords: set[ServerKey]) -> dict[ServerKey, str]:
        """The mer server each key runs on (keys in conflict are left out)."""
        existing = await self.uow.servers.list()
        names: dict[ServerKey, str] = {}
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

    async def _server(self, key: ServerKey, existing: list[Server]) -> str | None:
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

    async def model(self, m: SourceModel, server: str | None) -> None:
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

    def _register(self, m: SourceModel, server: str, model_id: uuid.UUID | None) -> None:
        """What ModelAccess rows find this model by: its Rust MER name or a row's uid."""
        for key in (m.original, *m.uids):
            self.imported[key].append((m.name, server, model_id))

    async def _add_model(self, config: ModelConfig, m: SourceModel) -> ModelConfig | None:
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
    mapper = Mapper(catalog, report, with_history)
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
