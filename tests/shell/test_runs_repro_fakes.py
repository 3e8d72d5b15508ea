"""Reproducible runs without a database: the snapshot written before the model starts,
`runs replay`'s one-line refusals and rendering, the .npy image of an export and the
checks on reading one (tests/shell/test_runs_repro.py runs the same on SQLite and
PostgreSQL)."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mer.domain import RunRecord, RunStatus, vector_sha256
from mer.errors import UsageError
from mer.services.npy_image import npy_bytes, npy_vector
from mer.services.run_export import read_export
from mer.services.run_replay import Outcome, Replay, differences
from mer.services.run_snapshot import snapshot_config
from mer.services.weight_files import read_weights_file
from mer.shell import render
from tests.fakes import FakeExecutor
from tests.shell.harness import ShellOnFakes


class SeesItsRow(FakeExecutor):
    """Notes the snapshot the run's row held when the model started."""

    def __init__(self) -> None:
        super().__init__()
        self.store: Any = None
        self.seen: list[Any] = []

    async def run(self, request, server, sinks=None):  # type: ignore[no-untyped-def]
        self.seen.append(self.store.runs[request.run_id].snapshot)
        return await super().run(request, server, sinks)


@pytest.fixture
def sh() -> Iterator[ShellOnFakes]:
    executor = SeesItsRow()
    shell = ShellOnFakes(allow_edit=True, executor=executor).seed()
    executor.store = shell.store
    yield shell
    shell.close()


def _run(sh: ShellOnFakes, line: str) -> dict[str, Any]:
    done = sh(line + " --json")
    assert not done.failed, done.err
    image: dict[str, Any] = json.loads(done.out)
    return image


def test_the_snapshot_is_in_the_row_before_the_model_starts(sh: ShellOnFakes) -> None:
    run = _run(sh, "run lin --data 3 --param bias=4")
    seen = sh.executor.seen  # type: ignore[attr-defined]
    assert len(seen) == 1 and seen[0] is not None  # a run killed now is reproducible
    assert seen[0]["params"] == {"bias": 4} and seen[0]["request"]["input"] == 3
    assert seen[0]["weights"]["w"]["revision"] == 1 and seen[0]["request"]["run_id"] == run["id"]


def test_a_replay_runs_on_another_server_when_told(sh: ShellOnFakes) -> None:
    run = _run(sh, "run lin --data 3")
    assert sh("server add other --kind local").exit_code == 0
    replay = _run(sh, f"runs replay {run['id'][:8]} --server other")
    assert replay["identical"] is True and replay["run"]["server"] == "other"
    done = sh(f"runs replay {run['id'][:8]} --server gpu9")
    assert done.failed and done.err == "error: server 'gpu9' not found; see `servers`\n"


def test_a_replay_names_a_recorded_server_that_is_gone(sh: ShellOnFakes) -> None:
    for line in ("server add gone --kind local", "model add far --server gone --command true"):
        assert sh(line).exit_code == 0
    run = _run(sh, "run far")
    for line in ("model set far server local", "server remove gone"):
        assert sh(line).exit_code == 0, sh(line).err
    done = sh(f"runs replay {run['id']}")
    assert done.failed and done.err == (f"error: run {run['id'][:8]} ran on server 'gone', which is "
                                        f"not known here; give --server NAME\n")
    assert _run(sh, f"runs replay {run['id']} --server local")["run"]["server"] == "local"


def test_a_vector_removed_and_added_again_is_not_taken_for_the_recorded_one(sh: ShellOnFakes) -> None:
    run = _run(sh, "run lin --data 3")
    for line in ("weights remove lin w --yes", "weights set lin w --values 5,5,5 --new"):
        assert sh(line).exit_code == 0
    assert _run(sh, "weights lin w")["revision"] == 1  # a revision 1 again, of other values
    done = sh(f"runs replay {run['id']}")
    assert done.failed and done.err.startswith(f"error: run {run['id'][:8]} used weights 'w' revision 1, "
                                               f"which is no longer stored")


def test_an_export_replays_on_another_mer_that_knows_the_server(sh: ShellOnFakes, tmp_path: Path) -> None:
    run = _run(sh, "run lin --data 3")
    assert sh(f"runs export {run['id']} --to {tmp_path / 'run.zip'}").exit_code == 0
    elsewhere = ShellOnFakes(allow_edit=True)  # no model at all; a server of the same name
    try:
        assert elsewhere("server add local --kind local").exit_code == 0
        replay = _run(elsewhere, f"runs replay --from {tmp_path / 'run.zip'}")
        assert replay["identical"] is True and replay["run"]["model"] == "lin"
        sent = elsewhere.executor.requests[0]
        assert sent.command == ["python3", "lin.py"] and sent.payload["parameters"] == {"bias": 0.5}
        assert json.loads(sent.payload["weights"]) == {"w": [1.0, 2.0, 3.0]}
    finally:
        elsewhere.close()


@pytest.mark.parametrize(("line", "message"), [
    ("runs replay", "give the id of a run to replay, or --from FILE (an export)"),
    ("runs replay 1234 --from x.zip", "give a run id or --from FILE (an export), not both"),
    ("runs replay abcd", "run 'abcd' not found; see `runs`"),
    ("runs export abcd --to x.zip", "run 'abcd' not found; see `runs`"),
])
def test_replay_and_export_refuse_in_one_line(sh: ShellOnFakes, line: str, message: str) -> None:
    done = sh(line)
    assert done.failed and done.exit_code != 0 and done.out == ""
    assert done.err == f"error: {message}\n"


def test_replaying_an_export_needs_allow_edit(tmp_path: Path) -> None:
    shell = ShellOnFakes(allow_edit=False).seed()
    try:
        done = shell(f"runs replay --from {tmp_path / 'run.zip'}")
        assert done.failed and done.err == ("error: replaying an export runs the command it records: "
                                            "start mer with --allow-edit\n")
        assert shell.executor.requests == []
    finally:
        shell.close()


def test_a_run_without_a_snapshot_cannot_be_replayed_or_exported(sh: ShellOnFakes, tmp_path: Path) -> None:
    old = RunRecord(model="lin", version="1", server="local", os_user="ann", status=RunStatus.SUCCEEDED)
    sh.store.runs[old.id] = old
    for line in (f"runs replay {old.id}", f"runs export {old.id} --to {tmp_path / 'x.zip'}"):
        done = sh(line)
        assert done.failed and done.err == (f"error: run {str(old.id)[:8]} has no snapshot (it ran before "
                                            f"mer recorded them, or it is a pipeline's run: replay its "
                                            f"steps), so it cannot be exported or replayed\n")
    assert list(tmp_path.iterdir()) == []


# -- what a replay says --------------------------------------------------------------------

def test_differences_name_each_path_and_count_the_rest() -> None:
    old = Outcome("succeeded", 0, {"y": 1, "z": [1, 2], "same": "a", "n": 1})
    new = Outcome("failed", 3, {"y": 2, "z": [1, 5], "same": "a", "n": 1.0, "extra": True})
    assert differences(old, new) == ["status: succeeded -> failed", "exit_code: 0 -> 3",
                                     "result.y: 1 -> 2", "result.z[1]: 2 -> 5",
                                     "result.extra: (none) -> true"]
    assert differences(Outcome("succeeded", 0, True), Outcome("succeeded", 0, 1)) == ["result: true -> 1"]
    many = differences(Outcome("x", 0, list(range(10))), Outcome("x", 0, list(range(1, 11))))
    assert many[-1] == "... and 4 more" and len(many) == 7
    long = differences(Outcome("x", 0, "a" * 100), Outcome("x", 0, "b"))[0]
    assert long.startswith('result: "aaaa') and long.endswith('... -> "b"') and len(long) < 90


def test_a_replay_renders_its_verdict() -> None:
    record = RunRecord(model="lin", version="1", server="local", os_user="ann",
                       status=RunStatus.SUCCEEDED, exit_code=0)
    same = Replay(of="1c7a0000-0000", source="access log", recorded=Outcome("succeeded", 0, None),
                  record=record)
    assert render.replay_text(same) == (f"identical: replay of run 1c7a0000 (lin@1 on local) succeeded "
                                        f"(exit 0); run {str(record.id)[:8]}")
    other = Replay(of="1c7a0000-0000", source="run.zip", recorded=Outcome("succeeded", 0, None),
                   record=record, differences=["result.y: 1 -> 2"])
    assert render.replay_text(other).splitlines()[0].startswith("differs: replay of run 1c7a0000")
    assert render.replay_text(other).splitlines()[1] == "  result.y: 1 -> 2"
    image = render.replay_image(other)
    assert image["identical"] is False and image["source"] == "run.zip"
    assert image["run"]["id"] == str(record.id)


# -- the export's files --------------------------------------------------------------------

def test_an_exported_vector_is_the_npy_numpy_writes_and_mer_reads() -> None:
    numpy = pytest.importorskip("numpy")
    values = array("d", [0.5, -2.0, 1e-300, 3.25])
    saved = io.BytesIO()
    numpy.save(saved, numpy.array(values.tolist()))
    assert npy_bytes(values) == saved.getvalue()  # byte for byte
    assert npy_vector(npy_bytes(values), "w.npy") == values
    assert npy_vector(npy_bytes(array("d")), "w.npy") == array("d")


def test_weights_set_reads_an_exported_vector(tmp_path: Path) -> None:
    pytest.importorskip("numpy")
    path = tmp_path / "w.npy"
    path.write_bytes(npy_bytes(array("d", [1.0, 2.0])))
    assert read_weights_file(path) == array("d", [1.0, 2.0])


def test_an_npy_that_mer_did_not_write_is_refused() -> None:
    numpy = pytest.importorskip("numpy")
    f32 = io.BytesIO()
    numpy.save(f32, numpy.array([1.0, 2.0], dtype=numpy.float32))
    with pytest.raises(UsageError, match=r"^w.npy: .*as mer writes it"):
        npy_vector(f32.getvalue(), "w.npy")
    with pytest.raises(UsageError, match="not a whole number of float64 values"):
        npy_vector(npy_bytes(array("d", [1.0]))[:-1], "w.npy")
    with pytest.raises(UsageError, match="not an .npy file"):
        npy_vector(b"hello", "w.npy")


def _export(path: Path, **change: Any) -> Path:
    """A small valid export at ``path``, with ``change`` applied to its weights entry."""
    values = npy_bytes(array("d", [1.0, 2.0]))
    digest = vector_sha256(array("d", [1.0, 2.0]))
    npy = change.pop("npy", values)
    entry = {"file": "weights/w.npy", "revision": 1, "length": 2, "sha256": digest,
             "file_sha256": hashlib.sha256(values).hexdigest(), **change}
    meta = {"format": "mer-run-export/1", "run": {"id": "r"},
            "snapshot": {"model": {"id": "00000000-0000-0000-0000-000000000001"},
                         "weights": {"w": {"revision": 1, "sha256": digest}}},
            "weights": {"w": entry}}
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", json.dumps(meta))
        zf.writestr("result.json", "null")
        zf.writestr("weights/w.npy", npy)
    return path


def test_reading_an_export_checks_both_digests(tmp_path: Path) -> None:
    good = read_export(_export(tmp_path / "good.zip"))
    assert [(w.name, w.revision, w.values.tolist()) for w in good.weights] == [("w", 1, [1.0, 2.0])]
    # A file replaced together with its listed digest still fails the run's own record.
    other = npy_bytes(array("d", [1.0, 3.0]))
    swapped = _export(tmp_path / "swapped.zip", npy=other, file_sha256=hashlib.sha256(other).hexdigest())
    with pytest.raises(UsageError, match=r"weights/w.npy does not hold the values the run used"):
        read_export(swapped)


@pytest.mark.parametrize(("content", "message"), [
    (b"not a zip", "not a zip file"),
    (None, "no metadata.json; not a mer run export"),
])
def test_a_file_that_is_no_export_is_refused(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "x.zip"
    if content is None:
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("other.txt", "x")
    else:
        path.write_bytes(content)
    with pytest.raises(UsageError, match=message):
        read_export(path)


def test_a_recorded_configuration_obeys_the_rules_of_every_model() -> None:
    snapshot = {"model": {"id": "00000000-0000-0000-0000-000000000001", "name": "m", "version": "1"},
                "config": {"command": ["-e", "x"]}, "server": {"name": "local"}}
    with pytest.raises(UsageError, match=r"^run.zip: command: the program '-e' starts with '-'"):
        snapshot_config(snapshot, "run.zip")
    snapshot["config"] = {"command": "python3 m.py"}
    with pytest.raises(UsageError, match=r"^run.zip: command is str, not what mer records"):
        snapshot_config(snapshot, "run.zip")
    snapshot["config"] = {"command": ["python3", "m.py"], "env": {"A": "1"}, "timeout": 5}
    model = snapshot_config(snapshot, "run.zip")
    assert (model.ref, model.server, model.command, model.env, model.timeout) == (
        "m@1", "local", ["python3", "m.py"], {"A": "1"}, 5.0)
