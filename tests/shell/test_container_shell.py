"""A container model through the whole stack (issue 14): the shell in-process on a real
SQLite database and real podman: `server add --kind container`, `model add --image`,
`run --input-file`, the run's artifacts in `runs show` and out with `runs artifact`, and
a missing image as one line with the run recorded failed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mer.config import Settings
from tests.faults.shell_harness import InProcessShell

MODEL = ("sh -c 'cat /data/input/words > /data/output/copy.txt; "
         "echo [2] > /data/output/result.json; echo working >&2'")


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[InProcessShell]:
    sh = InProcessShell(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'mer.db'}",
                                 data_dir=tmp_path / "data", allow_edit=True))
    yield sh
    sh.close()


def test_a_container_model_from_add_to_artifact(podman_image, shell, tmp_path: Path) -> None:
    assert shell("server add box --kind container --engine podman").exit_code == 0
    added = shell(f"model add copier --server box --image {podman_image.image} --memory 64m "
                  f"--cpus 1 --command \"{MODEL}\"")
    assert added.exit_code == 0, added.err
    assert "image:        localhost/mer-test:1 (cpus 1, memory 64m, network none)" in \
        shell("model show copier").out
    words = tmp_path / "words.txt"
    words.write_text("one\ntwo\n")
    ran = shell(f"run copier --input-file words={words} --json")
    assert ran.exit_code == 0, ran.err
    record = json.loads(ran.out.splitlines()[-1])
    digest = hashlib.sha256(b"one\ntwo\n").hexdigest()
    assert record["status"] == "succeeded" and record["result"] == [2]
    assert record["artifacts"] == [{"name": "copy.txt", "size": 8, "sha256": digest, "kept": True}]
    run_id = record["id"][:8]
    shown = shell(f"runs show {run_id}").out
    assert "artifacts:" in shown and f"copy.txt  8     {digest}  yes" in shown
    assert "working" in shown  # stderr kept
    out = tmp_path / "out"
    out.mkdir()
    copied = shell(f"runs artifact {run_id} copy.txt --to {out}")
    assert copied.exit_code == 0, copied.err
    assert (out / "copy.txt").read_bytes() == b"one\ntwo\n"
    missing = shell(f"runs artifact {run_id} nope.txt")
    assert missing.err == f"error: run {run_id} has no artifact 'nope.txt'; it has: copy.txt\n"
    # the container fields are fields like the others
    assert shell("model set copier network host").exit_code == 0
    assert "network host)" in shell("model show copier").out
    assert shell("model set copier memory lots").err == ("error: memory 'lots' is not a size such "
                                                         "as 512m or 2g\n")


def test_a_missing_image_is_one_line_and_a_failed_run(podman_image, shell) -> None:
    shell("server add box --kind container")
    assert shell("model add ghost --server box --image localhost/mer-nope:1").exit_code == 0
    ran = shell("run ghost")
    assert ran.exit_code == 1
    assert ran.err == ("error: cannot start ghost@1: image 'localhost/mer-nope:1' is not on this "
                       "machine; `podman pull` or `podman load` it there first (mer never pulls "
                       "during a run)\n")
    [row] = json.loads(shell("runs list --model ghost --json").out)
    assert row["status"] == "failed" and "localhost/mer-nope:1" in row["error"]
    # an input file for a model without an image: refused, and recorded too
    shell("server add here --kind local")
    shell("model add plain --server here --command true")
    refused = shell("run plain --input-file x=/etc/hostname")
    assert refused.err == ("error: --input-file is for container models; 'plain@1' has no "
                           "image\n")
    [row] = json.loads(shell("runs list --model plain --json").out)
    assert row["status"] == "failed"
