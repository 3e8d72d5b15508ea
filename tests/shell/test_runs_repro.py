"""Reproducible runs on a real database (SQLite and PostgreSQL): the snapshot a run's row
keeps, `runs export` and `runs replay` (from the access log and from an export), through
an in-process shell as `mer` builds it.

One database per dialect for the module (its own PostgreSQL database, so that the tests
that empty the shared one cannot touch it); each test adds its own models, so the tests
do not depend on one another's edits.
"""

from __future__ import annotations

import asyncio
import getpass
import hashlib
import io
import json
import struct
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import mer
from mer.config import Settings
from tests.conftest import skip_or_fail
from tests.faults.shell_harness import InProcessShell, prepare_database
from tests.fixtures_pg import PG_HOST, PG_PORT, PG_USER, _admin

ROOT = Path(__file__).resolve().parents[2]
LINEAR = f"python3 {ROOT / 'examples' / 'models' / 'linear.py'}"
ECHO = f"python3 {ROOT / 'examples' / 'models' / 'echo.py'}"
X = """'{"x": [1, 2, 3]}'"""


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def shell(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessShell]:
    tmp = tmp_path_factory.mktemp("repro")
    name = None
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp / 'mer.db'}"
    else:
        name = f"mer_test_repro_{uuid.uuid4().hex[:8]}"
        try:
            asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
        except Exception as err:  # noqa: BLE001 - unreachable, or asyncpg's own errors
            skip_or_fail(f"cannot create a PostgreSQL test database: {err}")
        url = f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    prepare_database(url)
    sh = InProcessShell(Settings(database_url=url, data_dir=tmp / "data", allow_edit=True))
    try:
        yield sh
    finally:
        sh.close()
        if name is not None:
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def ok(shell: InProcessShell, line: str) -> str:
    done = shell(line)
    assert not done.failed and done.exit_code == 0, (line, done.err)
    return done.out


def js(shell: InProcessShell, line: str) -> dict:
    out = ok(shell, line + " --json")
    assert out.count("\n") == 1, out  # one JSON document on one line
    return json.loads(out)


def linear(shell: InProcessShell, name: str) -> str:
    """A new linear model ``name``: w = [0.5, 2, -1] at revision 1, bias 0.5."""
    ok(shell, f"model add {name} --server local --command '{LINEAR}'")
    ok(shell, f"weights set {name} w --values 0.5,2,-1 --new")
    ok(shell, f"param set {name} bias 0.5")
    return name


def change_everything(shell: InProcessShell, name: str) -> None:
    """Today's configuration, parameters and weights all differ from the recorded ones."""
    ok(shell, f"model set {name} command {ECHO}")
    ok(shell, f"model set {name} timeout 7")
    ok(shell, f"param set {name} bias 100")
    ok(shell, f"weights set {name} w --values 9,9,9")


def runs_of(shell: InProcessShell, model: str) -> list[dict]:
    return json.loads(ok(shell, f"runs --model {model} --json"))


def test_a_run_records_what_reruns_it(shell: InProcessShell) -> None:
    name = linear(shell, "snap")
    ok(shell, f"weights set {name} w --values 1,2,3")  # an edit: the run uses revision 2
    run = js(shell, f"run {name} --data {X} --param bias=2 --timeout 9")
    snapshot = js(shell, f"runs show {run['id']}")["snapshot"]
    w = js(shell, f"weights {name} w")
    assert snapshot["mer"] == mer.__version__ and snapshot["kind"] == "run"
    assert snapshot["model"]["name"] == name and snapshot["model"]["version"] == "1"
    config = snapshot["config"]
    assert config["command"] == LINEAR.split() and config["timeout"] == 9
    assert (config["mode"], config["framing"], config["env"], config["workdir"]) == ("oneshot", "jsonl", {}, None)
    assert snapshot["params"] == {"bias": 2}  # after the override
    assert snapshot["weights"] == {"w": {"revision": 2, "sha256": w["sha256"], "length": 3}}
    assert snapshot["request"] == {"model": name, "version": "1", "run_id": run["id"],
                                   "parameters": {"bias": 2}, "input": {"x": [1, 2, 3]}}
    assert snapshot["server"]["name"] == "local" and snapshot["server"]["kind"] == "local"
    assert snapshot["user"] == getpass.getuser()
    assert run["result"] == {"y": 16.0}


def test_a_replay_runs_the_recorded_model_not_todays(shell: InProcessShell) -> None:
    name = linear(shell, "again")
    first = js(shell, f"run {name} --data {X} --param bias=1")
    change_everything(shell, name)
    assert js(shell, f"run {name} --data {X}")["result"] != first["result"]  # today's differs

    replay = js(shell, f"runs replay {first['id'][:8]}")
    assert replay["identical"] is True and replay["differences"] == []
    assert replay["replay_of"] == first["id"] and replay["source"] == "access log"
    run = replay["run"]
    assert run["result"] == first["result"] == {"y": 2.5}
    assert run["weight_revisions"] == {"w": 1} and run["id"] != first["id"]
    # The replay is a run of the access log, and its snapshot says what it replayed.
    snapshot = js(shell, f"runs show {run['id']}")["snapshot"]
    assert snapshot["replay_of"] == first["id"]
    assert snapshot["config"]["command"] == LINEAR.split() and snapshot["params"] == {"bias": 1}
    assert run["id"] in {r["id"] for r in runs_of(shell, name)}


def test_a_nondeterministic_model_differs_and_fails_the_command(shell: InProcessShell) -> None:
    first = js(shell, "run echo --data 1")  # echo returns its request, run id included
    done = shell(f"runs replay {first['id']} --json")
    assert done.failed and done.exit_code == 1 and done.err == ""
    image = json.loads(done.out)
    assert image["identical"] is False and image["run"]["status"] == "succeeded"
    assert image["differences"] == [
        f'result.echo.run_id: "{first["id"]}" -> "{image["run"]["id"]}"']


def test_an_export_holds_the_run_replays_and_an_altered_copy_is_refused(
        shell: InProcessShell, tmp_path: Path) -> None:
    import numpy

    name = linear(shell, "exported")
    first = js(shell, f"run {name} --data {X}")
    used = js(shell, f"weights {name} w")
    ok(shell, f"weights set {name} w --values 7,7,7")  # not what the export must hold
    done = js(shell, f"runs export {first['id'][:6]} --to {tmp_path}")
    path = tmp_path / f"run-{first['id'][:8]}.zip"
    assert done["path"] == str(path) and done["run"] == first["id"]
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == sorted(done["files"]) == sorted(
            ["metadata.json", "request.json", "result.json", "stdout.txt", "stderr.txt", "weights/w.npy"])
        meta = json.loads(zf.read("metadata.json"))
        npy = zf.read("weights/w.npy")
        request, result = json.loads(zf.read("request.json")), json.loads(zf.read("result.json"))
        stdout = zf.read("stdout.txt").decode()
    assert meta["format"] == "mer-run-export/1"
    run = meta["run"]
    assert (run["id"], run["status"], run["exit_code"]) == (first["id"], "succeeded", 0)
    assert run["started_at"] == first["started_at"] and run["duration_ms"] is not None
    assert meta["snapshot"]["weights"]["w"] == {"revision": 1, "sha256": used["sha256"], "length": 3}
    assert meta["weights"]["w"] == {"file": "weights/w.npy", "revision": 1, "length": 3,
                                    "sha256": used["sha256"], "file_sha256": hashlib.sha256(npy).hexdigest()}
    values = numpy.load(io.BytesIO(npy))
    assert values.dtype == numpy.float64 and values.tolist() == [0.5, 2.0, -1.0]
    assert hashlib.sha256(values.tobytes()).hexdigest() == used["sha256"]
    assert request["input"] == {"x": [1, 2, 3]} and request["parameters"] == {"bias": 0.5}
    assert result == first["result"] == {"y": 2.0} and stdout == '{"y": 2.0}\n'

    change_everything(shell, name)
    ok(shell, f"weights remove {name} w --yes")  # revision 1 is gone from the database
    done = shell(f"runs replay {first['id']}")
    assert done.failed and done.out == ""
    assert done.err.splitlines() == [
        f"error: run {first['id'][:8]} used weights 'w' revision 1, which is no longer stored (the "
        f"vector was removed since); replay an export of the run made before (`runs replay --from FILE`)"]
    replay = js(shell, f"runs replay --from {path}")
    assert replay["identical"] is True and replay["run"]["result"] == {"y": 2.0}
    assert replay["replay_of"] == first["id"] and replay["source"] == str(path)

    altered = tmp_path / "altered.zip"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(altered, "w") as dst:
        for member in src.namelist():
            data = src.read(member)
            if member == "weights/w.npy":
                data = data[:-8] + struct.pack("<d", 0.75)  # the last value, changed
            dst.writestr(member, data)
    before = len(runs_of(shell, name))
    done = shell(f"runs replay --from {altered}")
    assert done.failed and done.exit_code == 2 and done.out == ""
    lines = done.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {altered}: weights/w.npy was altered: its sha256 is ")
    assert lines[0].endswith("; nothing was run")
    assert len(runs_of(shell, name)) == before  # nothing ran
