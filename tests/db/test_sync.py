"""`mer-migrate sync --catalog FILE`: prints what it would change, entry by entry, changes
nothing without --apply, and with it makes the changes as the OS user's audited edits
through the shell's services (same rules, same conflict checks). Real processes on
SQLite and the real PostgreSQL, as an admin would run them."""

from __future__ import annotations

import getpass
import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from mer.db.catalog import load_catalog
from mer.errors import ConflictError
from mer.execution.registry import ExecutorRegistry
from mer.services import models, servers, weights
from mer.services.catalog_sync import apply_sync, plan_sync
from mer.services.context import ServiceContext
from tests.shell.conftest import BIN, ROOT, Mer

CATALOG = ROOT / "examples" / "catalog.toml"


def _migrate(mer: Mer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "mer-migrate"), *args], env=mer.env, capture_output=True,
                          text=True, timeout=120)


# One dialect for the processes (the SQL paths are the in-process tests' below, on both).
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_sync_prints_each_change_and_makes_them_only_with_apply(tmp_path: Path, db_url: str) -> None:
    mer = Mer(tmp_path, db_url)
    edit = mer("--allow-edit", "-c", "param set linear bias 7", "-c", "weights set linear w --values 9,9,9",
               "-c", "model disable crash", "-c", "model remove noisy --yes",
               "-c", "model set linear timeout 60")
    assert edit.returncode == 0, edit.stderr
    expected = ["model linear@1: timeout: 60 -> 30", "param linear@1: bias: 7 -> 0.5",
                "weights linear@1/w: revision 2 -> new revision", "model noisy@1: added"]

    dry = _migrate(mer, "sync", "--catalog", str(CATALOG))
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines()[:-1] == expected
    assert "4 change(s)" in dry.stdout and "--apply" in dry.stdout

    applied = _migrate(mer, "sync", "--apply", "--catalog", str(CATALOG))
    assert applied.returncode == 0, applied.stderr
    # The same changes again: the dry run made none of them.
    assert applied.stdout.splitlines()[:-1] == expected
    assert f"4 edit(s) made by {getpass.getuser()}" in applied.stdout
    shown = mer("--json", "-c", "show linear", "-c", "show noisy", "-c", "show crash",
                "-c", "audit linear")
    assert shown.returncode == 0, shown.stderr
    linear, noisy, crash, audit = [json.loads(line) for line in shown.stdout.splitlines()]
    assert linear["timeout"] == 30 and linear["parameters"] == {"bias": 0.5}
    assert linear["weights"][0]["revision"] == 3 and linear["weights"][0]["author"] == getpass.getuser()
    assert noisy["enabled"] is True
    assert crash["enabled"] is False  # the catalog states no `enabled`: left alone
    synced = [e for e in audit if e["action"] == "model.update"]
    assert synced and synced[0]["user"] == getpass.getuser()
    assert synced[0]["before"]["timeout"] == 60 and synced[0]["after"]["timeout"] == 30


def test_a_bad_catalog_is_refused_by_sync_whole(tmp_path: Path) -> None:
    mer = Mer(tmp_path)
    bad = tmp_path / "bad.toml"
    bad.write_text(CATALOG.read_text().replace("timeout = 30", "timeout = 60", 1)
                   .replace('name = "noisy"', 'name = "a b@c"', 1))
    done = _migrate(mer, "sync", "--apply", "--catalog", str(bad))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [done.stderr.strip()]
    assert f"{bad}: models[" in done.stderr and "'a b@c@1': name:" in done.stderr
    with sqlite3.connect(tmp_path / "data" / "mer.db") as conn:
        actors = {a for (a,) in conn.execute("select actor from audit_log")}
        assert conn.execute("select timeout from models where name = 'linear'").fetchone() == (30,)
    assert actors == {f"catalog:{getpass.getuser()}"}  # the first load's, and no other


SERVERS = """
[[servers]]
name = "local"
kind = "local"

[[servers]]
name = "gpu1"
kind = "ssh"
host = "127.0.0.1"
port = 22
"""


def _ctx(uow_factory, actor: str) -> ServiceContext:
    return ServiceContext(uow=uow_factory, executors=ExecutorRegistry(), allow_edit=True, actor=actor)


async def test_sync_shows_server_fields_and_additions(tmp_path: Path, uow_factory) -> None:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(SERVERS)
    await load_catalog(catalog, uow_factory)
    await servers.set_server_field(_ctx(uow_factory, "ann"), "gpu1", "port", "2222")
    catalog.write_text(SERVERS.replace("port = 22", "port = 22\nmax_runs = 2")
                       + '\n[[servers]]\nname = "gpu2"\nkind = "ssh"\nhost = "10.0.0.2"\n')
    ctx = _ctx(uow_factory, "bob")
    plan = await plan_sync(ctx, catalog)
    assert plan.lines == ["server gpu1: port: 2222 -> 22", "server gpu1: max_runs: 4 -> 2",
                          "server gpu2: added"]
    assert await apply_sync(ctx, plan) == 2
    gpu1 = await servers.get_server(ctx, "gpu1")
    assert (gpu1.port, gpu1.max_runs) == (22, 2) and (await servers.get_server(ctx, "gpu2")).host
    async with uow_factory() as uow:
        edits = await uow.audit.query(actor="bob")
    assert {(e.action, e.target) for e in edits} == {("server.update", "server gpu1"),
                                                     ("server.add", "server gpu2")}
    assert (await plan_sync(ctx, catalog)).steps == []


async def test_an_edit_made_between_plan_and_apply_is_refused_as_a_conflict(uow_factory) -> None:
    await load_catalog(CATALOG, uow_factory)
    ctx, ann = _ctx(uow_factory, "sync"), _ctx(uow_factory, "ann")
    await models.set_model_field(ann, "linear", "timeout", "60")
    await models.set_param(ann, "linear", "bias", "7")
    plan = await plan_sync(ctx, CATALOG)
    assert plan.lines[:2] == ["model linear@1: timeout: 60 -> 30", "param linear@1: bias: 7 -> 0.5"]
    await models.set_param(ann, "linear", "bias", "8")  # after the plan read 7
    with pytest.raises(ConflictError):
        await apply_sync(ctx, plan)
    view = await models.show_model(ctx, "linear")
    assert view.model.timeout == 30  # the step before the conflict was made
    assert view.parameters == {"bias": 8}  # ann's later edit stands


async def test_sync_resizes_and_adds_weight_vectors_the_file_states(tmp_path: Path, uow_factory) -> None:
    """What the shell asks --resize/--new for, the file states: sync makes it."""
    catalog = tmp_path / "catalog.toml"
    base = '[[servers]]\nname = "local"\n[[models]]\nname = "m"\nserver = "local"\ncommand = ["true"]\n'
    catalog.write_text(base + "[models.weights]\nw = [1.0, 2.0]\n")
    await load_catalog(catalog, uow_factory)
    catalog.write_text(base + "[models.weights]\nw = [1.0, 2.0, 3.0]\nv = [5.0]\n")
    ctx = _ctx(uow_factory, "bob")
    plan = await plan_sync(ctx, catalog)
    assert plan.lines == ["weights m@1/w: revision 1 -> new revision", "weights m@1/v: added (1 values)"]
    assert await apply_sync(ctx, plan) == 2
    stored = {w.name: (w.revision, list(w.values)) for w in await weights.show_weights(ctx, "m")}
    assert stored == {"w": (2, [1.0, 2.0, 3.0]), "v": (1, [5.0])}
