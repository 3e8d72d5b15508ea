"""`mer-migrate import-mer`: a Rust MER catalog written in its SurrealQL 1.x
(tests/services/rust_mer: models over local and ssh, a password, a duplicate name,
weights, access rows, a file whose statements fail) read in an embedded SurrealDB and
imported into SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from mer.cli_migrate import main as migrate_main
from mer.db.uow import make_uow_factory
from mer.domain import ModelConfig, RunStatus, Server
from mer.errors import ConfigError, MerError
from mer.execution.registry import ExecutorRegistry
from mer.services import runs as run_svc
from mer.services.context import ServiceContext
from mer.services.mer_import import import_mer
from mer.services.surreal_source import RustMerCatalog, load_files, read_directory, read_server
from mer.services.surrealql import split_statements

FIXTURE = Path(__file__).parent / "rust_mer"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "models"
SSH_ALICE, SSH_BOB = "ssh-alice-gpu1.example.org-22", "ssh-bob-10.0.0.7-2222"
MODELS = {"bert@1", "chat-local@1", "chat-ssh@1", "resnet@1", "shout@1"}

# A local model that speaks the MER markers (examples/models/mer_echo.py), written at test
# time because its modelPath is this checkout's.
RUNNABLE = """
LET $modelUID = <string> rand::uuid::v4();
CREATE type::thing("ConnTypeParams", $modelUID) CONTENT {
    uid: $modelUID, createdAt: time::now(), lastUpdated: time::now(),
};
CREATE type::thing("ModelParams", $modelUID) CONTENT {
    uid: $modelUID, createdAt: time::now(), lastUpdated: time::now(),
    inferenceCommand: "python3 mer_echo.py",
    modelPath: "MODEL_PATH",
};
CREATE type::thing("AvailableModels", $modelUID) CONTENT {
    uid: $modelUID, createdAt: time::now(), lastUpdated: time::now(),
    name: "shout", connType: "local",
    connTypeParams: array::add([], type::thing("ConnTypeParams", $modelUID)),
    modelParams: array::add([], type::thing("ModelParams", $modelUID)),
};
"""


@pytest.fixture(scope="session")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("rust_mer")
    for path in FIXTURE.glob("*.sql"):
        shutil.copy(path, directory)
    (directory / "07-CreateRunnable.sql").write_text(RUNNABLE.replace("MODEL_PATH", str(EXAMPLES)))
    return directory


@pytest.fixture(scope="session")
def catalog(source: Path) -> RustMerCatalog:
    return asyncio.run(read_directory(source))


async def _snapshot(uow_factory: Any) -> dict[str, Any]:
    """Everything an import may write, as comparable values."""
    async with uow_factory() as uow:
        models = await uow.models.list()
        weights = {m.ref: [(h.revision, h.sha256) for n in await uow.weights.names(m.id)
                           for h in await uow.weights.history(m.id, n)] for m in models}
        return {
            "servers": sorted((s.name, s.kind, s.host, s.port, s.user, s.row_version)
                              for s in await uow.servers.list()),
            "models": sorted((m.ref, m.server, tuple(m.command), m.row_version) for m in models),
            "params": {m.ref: (await uow.parameters.get(m.id)).values for m in models},
            "weights": weights,
            "runs": sorted(str(r.id) for r in await uow.runs.query(limit=1000)),
            "audit": len(await uow.audit.query(limit=1000)),
        }


def test_statements_are_split_outside_strings_and_comments() -> None:
    text = ('-- head; comment\nDEFINE FIELD a ON TABLE t TYPE record(x);\n'
            'CREATE t CONTENT {\n  s: "x; record(y)", -- c;\n  b: [1; 2],\n};\nRETURN type::record("t", 1)')
    got = [(s.line, s.text.splitlines()[0], s.rewrites) for s in split_statements(text)]
    assert got == [(2, "DEFINE FIELD a ON TABLE t TYPE record<x>", 1),
                   (3, "CREATE t CONTENT {", 0), (7, 'RETURN type::record("t", 1)', 0)]
    assert '"x; record(y)"' in split_statements(text)[1].text


def test_files_run_rewritten_and_failing_statements_are_named(catalog: RustMerCatalog) -> None:
    assert catalog.files == 7 and catalog.rewrites == 2  # record(X) twice, in 01
    assert [f.split(": ")[0] for f in catalog.failed] == ["06-LegacyChecks.sql:4", "06-LegacyChecks.sql:8"]
    assert "string::starts_with" in catalog.failed[0] and "expected a uuid" in catalog.failed[1]
    assert sorted(m["name"] for m in catalog.models) == ["bert", "chat", "chat", "resnet", "shout"]
    # the statement after the failing ones ran: each statement stands alone
    assert "5c1d2f3e-0000-4a00-8000-000000000004" in {str(a["uid"]) for a in catalog.access}


async def test_dry_run_reports_the_mapping_and_writes_nothing(catalog: RustMerCatalog, uow_factory: Any) -> None:
    before = await _snapshot(uow_factory)
    report = await import_mer(catalog, uow_factory, with_history=True)
    adds = {(e.kind, e.name) for e in report.entries if e.action == "add"}
    assert {n for k, n in adds if k == "model"} == MODELS
    assert {n for k, n in adds if k == "server"} == {"local", SSH_ALICE, SSH_BOB}
    assert ("weights", "resnet@1/weights") in adds
    renamed = [e for e in report.entries if e.name.startswith("chat-")]
    assert all("renamed from 'chat'" in e.detail for e in renamed) and len(renamed) == 2
    passwords = [w for w in report.warnings if "password" in w]
    assert len(passwords) == 1 and passwords[0].startswith(f"server {SSH_ALICE} ")
    assert report.trust == [SSH_ALICE, SSH_BOB]
    assert report.summary().startswith("dry run, nothing written")
    assert await _snapshot(uow_factory) == before


async def test_apply_writes_the_mapping_once(catalog: RustMerCatalog, uow_factory: Any) -> None:
    report = await import_mer(catalog, uow_factory, apply=True, with_history=True, actor="ana")
    assert report.changed and report.summary().startswith("imported: added: 3 servers, 5 models, "
                                                          "1 weight vector, 4 access-log rows")
    async with uow_factory() as uow:
        resnet = await uow.models.get("resnet", "1")
        assert (resnet.server, resnet.mode, resnet.framing, resnet.workdir) == (
            SSH_ALICE, "worker", "mer", "/srv/models/resnet")
        assert resnet.command == ["sh", "-c", "conda activate vision && python3 infer.py"]
        assert resnet.train_command == ["sh", "-c", "python3 train.py --epochs 3"]
        assert (await uow.parameters.get(resnet.id)).values == {"batchSize": 32}
        weights = await uow.weights.get(resnet.id, "weights")
        assert (weights.revision, weights.author, list(weights.values)) == (1, "import", [0.5, 1.5, -2.0])
        alice = await uow.servers.get(SSH_ALICE)
        assert (alice.kind, alice.host, alice.port, alice.user, alice.identity_file) == (
            "ssh", "gpu1.example.org", 22, "alice", None)
        assert [m.ref for m in await uow.models.list(server=SSH_ALICE)] == ["bert@1", "resnet@1"]
        run = await uow.runs.get(uuid.UUID("5c1d2f3e-0000-4a00-8000-000000000001"))
        assert (run.model, run.server, run.model_id, run.os_user, run.status) == (
            "resnet", SSH_ALICE, resnet.id, "import", RunStatus.SUCCEEDED)
        assert run.started_at.isoformat() == "2024-03-02T09:00:00+00:00"
        chat = await uow.runs.get(uuid.UUID("5c1d2f3e-0000-4a00-8000-000000000003"))
        assert (chat.model, chat.server) == ("chat", "unknown")  # two imported models were 'chat'
        audit = await uow.audit.query(limit=100)
        assert {a.actor for a in audit} == {"import:ana"}
        assert [a.target for a in audit if a.action == "import.mer"] == [f"import {catalog.source}"]

    before = await _snapshot(uow_factory)
    again = await import_mer(catalog, uow_factory, apply=True, with_history=True)
    assert not again.changed and again.summary().startswith("nothing to change")
    assert await _snapshot(uow_factory) == before


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_name_with_other_content_is_a_conflict_unless_overwrite(
        catalog: RustMerCatalog, uow_factory: Any) -> None:
    async with uow_factory() as uow:
        await uow.servers.add(Server(name="local"))
        mine = await uow.models.add(ModelConfig(name="resnet", server="local", command=["python3", "mine.py"]))
        await uow.weights.append(mine.id, "weights", [9.0], author="me")
        await uow.commit()
    report = await import_mer(catalog, uow_factory, apply=True)
    conflicts = {e.name: e.detail for e in report.entries if e.action == "conflict"}
    assert conflicts == {"resnet@1": "mer's resnet@1 differs in server, command, train_command, mode, "
                                     "framing, workdir, parameters, weights weights; skipped"}
    async with uow_factory() as uow:
        assert (await uow.models.get("resnet", "1")).command == ["python3", "mine.py"]
        assert await uow.models.get("bert", "1") is not None  # the rest was imported
    report = await import_mer(catalog, uow_factory, apply=True, overwrite=True)
    assert [(e.name, e.action) for e in report.entries if e.action == "overwrite"] == [
        ("resnet@1", "overwrite"), ("resnet@1/weights", "overwrite")]
    async with uow_factory() as uow:
        resnet = await uow.models.get("resnet", "1")
        assert (resnet.command[2], resnet.server, resnet.row_version) == (
            "conda activate vision && python3 infer.py", SSH_ALICE, 2)
        weights = await uow.weights.get(resnet.id, "weights")
        assert (weights.revision, weights.author, list(weights.values)) == (2, "import", [0.5, 1.5, -2.0])
        assert sorted(a.action for a in await uow.audit.query(targets_like=["model resnet@1", "weights resnet@1/%"])) == [
            "model.update", "param.replace", "weights.set"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_an_imported_local_mer_model_runs(catalog: RustMerCatalog, engine: Any) -> None:
    await import_mer(catalog, make_uow_factory(engine), apply=True)
    ctx = ServiceContext(uow=make_uow_factory(engine), executors=ExecutorRegistry())
    try:
        record, result = await run_svc.run_model(ctx, "shout", input="hello", timeout=20)
    finally:
        await ctx.executors.close()
    assert result is not None and result.result == "HELLO", result
    assert record.status is RunStatus.SUCCEEDED and record.server == "local"


async def test_a_surrealdb_url_is_read_and_its_failures_are_one_line(tmp_path: Path) -> None:
    from surrealdb import AsyncSurreal

    url = f"surrealkv://{tmp_path / 'kv'}"
    conn = AsyncSurreal(url)
    await conn.connect()
    await conn.use("ns", "db")
    await load_files(conn, sorted(FIXTURE.glob("0[1-4]-*.sql")), RustMerCatalog(source=url))
    await conn.close()
    catalog = await read_server(url, "ns", "db")
    assert sorted(m["name"] for m in catalog.models) == ["bert", "chat", "chat", "resnet"]
    with pytest.raises(MerError, match=r"^cannot read the Rust MER's SurrealDB at surrealkv://.*: .*authentication"):
        await read_server(url, "ns", "db", user="root", password="wrong")
    with pytest.raises(MerError, match=r"^cannot read the Rust MER's SurrealDB at ws://127.0.0.1:1: ") as err:
        await read_server("ws://127.0.0.1:1")
    assert "\n" not in str(err.value)


async def test_without_the_extra_one_line_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "surrealdb", None)  # as if `mer[surreal]` were not installed
    with pytest.raises(ConfigError, match=r"needs the extra mer\[surreal\]: pip install 'mer\[surreal\]'"):
        await read_directory(FIXTURE)


def test_the_command_dry_runs_applies_and_refuses_bad_input(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
        source: Path) -> None:
    for key in [k for k in os.environ if k.startswith("MER_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("MER_ENV_FILE", "/nonexistent/.env")
    monkeypatch.setenv("MER_DATA_DIR", str(tmp_path))
    assert migrate_main(["import-mer", str(source)]) == 2  # before `up`: says what to do
    assert "run `mer-migrate up` first" in capsys.readouterr().err
    assert migrate_main(["up"]) == 0
    capsys.readouterr()
    assert migrate_main(["import-mer", str(source), "--with-history"]) == 0
    dry = capsys.readouterr()
    assert "model    resnet@1" in dry.out and "dry run, nothing written" in dry.out
    assert "`server trust ssh-alice-gpu1.example.org-22`" in dry.out
    assert "warning: statement failed, skipped: 06-LegacyChecks.sql:4: DEFINE FIELD host" in dry.err
    assert sum("password is dropped" in line for line in dry.err.splitlines()) == 1
    assert migrate_main(["import-mer", str(source), "--with-history", "--apply"]) == 0
    assert "imported: added: 3 servers, 5 models" in capsys.readouterr().out
    assert migrate_main(["import-mer", str(source), "--with-history", "--apply"]) == 0
    assert "nothing to change" in capsys.readouterr().out
    assert migrate_main(["import-mer", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a directory of Rust MER migration files" in err
    assert migrate_main(["import-mer", str(source), "--user", "root"]) == 2
    assert "apply to a SurrealDB URL, not a directory" in capsys.readouterr().err


def _row(name: str, conn: str, host: str | None = None, command: str = "python3 m.py") -> dict[str, Any]:
    return {"name": name, "connType": conn,
            "connTypeParams": [{"host": host, "port": 22} if host else {}],
            "modelParams": [{"inferenceCommand": command}]}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_names_are_distinct_and_the_same_whatever_the_row_order(uow_factory: Any) -> None:
    rows = [_row("x", "ssh", "b"), _row("x", "local"), _row("x", "ssh", "a"),
            _row("y", "local"), _row("y", "local"), _row("z", "ssh"), _row("w", "docker")]
    reports = [await import_mer(RustMerCatalog(source="s", models=order), uow_factory)
               for order in (rows, rows[::-1])]
    for report in reports:
        models = {e.name: e.detail for e in report.entries if e.kind == "model"}
        assert sorted(models) == ["x-local@1", "x-ssh-1@1", "x-ssh-2@1", "y@1"]
        assert "on ssh-a-22:" in models["x-ssh-1@1"] and "on ssh-b-22:" in models["x-ssh-2@1"]
        skipped = {e.name: e.detail for e in report.entries if e.action == "skip"}
        assert skipped == {"AvailableModels 'z' (ssh)": "ConnTypeParams has no host; add one in the source",
                           "AvailableModels 'w' (docker)": "connType must be local or ssh; fix the row in the source"}
        assert report.warnings == ["AvailableModels 'y': 1 duplicate row (same content) not imported again"]
