"""The container executor against real podman (a busybox image built here), locally and
on the test sshd's host over SSH: the /data contract, stdin models, a worker, timeout and
Ctrl-C leaving no container, one-line errors, and the reaper's removal."""

from __future__ import annotations

import asyncio
import glob
import hashlib
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mer.domain import ContainerSpec, RunRequest, RunStatus, Server
from mer.errors import ExecutionError
from mer.execution.container import ContainerExecutor
from mer.execution.interface import Sinks

BOX = Server(name="box", kind="container")
# Writes every part of the contract: result.json, two artifacts, a log; says on stdout
# whether its stdin was the request of /data/input/request.json.
CONTRACT = r"""
cat > /tmp/stdin.json
if cmp -s /tmp/stdin.json /data/input/request.json; then same=true; else same=false; fi
cat /data/input/data.txt > /data/output/a.txt
mkdir -p /data/output/sub && head -c 200 /dev/zero > /data/output/sub/b.bin
echo loaded > /data/log/model.log
echo "{\"same_request\": $same, \"data\": \"$(cat /data/input/data.txt)\"}" > /data/output/result.json
echo '{"from": "stdout"}'
"""
WORKER = r"""
echo '{"ready": true}'
while IFS= read -r line; do
  case "$line" in *'"exit"'*) exit 0 ;; esac
  id=$(echo "$line" | sed 's/^{"id": \([0-9]*\).*/\1/')
  echo "{\"id\": $id, \"result\": {\"n\": $id, \"host\": \"$(cat /etc/hostname)\"}}"
done
"""


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def request(image: str, command: list[str], **kw) -> RunRequest:  # noqa: ANN003
    return RunRequest(model="m", version="1", command=command,
                      payload={"model": "m", "input": {"x": 1}},
                      container=ContainerSpec(image, memory="64m", cpus=1.0), **kw)


@pytest.fixture
async def ex() -> AsyncIterator[ContainerExecutor]:
    executor = ContainerExecutor(output_cap=64 * 1024, grace=0.5)
    yield executor
    await executor.close()


async def test_contract_input_result_artifacts_and_logs(podman_image, ex, tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("hello\n")
    store = tmp_path / "artifacts" / "run"
    req = request(podman_image.image, ["sh", "-c", CONTRACT], input_files={"data.txt": str(data)},
                  output_dir=str(store), artifact_cap=100)
    seen: list[bytes] = []
    result = await ex.run(req, BOX, Sinks(stdout=seen.append))
    assert result.status is RunStatus.SUCCEEDED, result.stderr
    # result.json wins over the last stdout line; the request came on stdin and as a file
    assert result.result == {"same_request": True, "data": "hello"}
    assert b'{"from": "stdout"}' in b"".join(seen)
    # every output file is listed; the one beyond the cap is not kept
    assert [a.image() for a in result.artifacts] == [
        {"name": "a.txt", "size": 6, "sha256": sha(b"hello\n"), "kept": True},
        {"name": "sub/b.bin", "size": 200, "sha256": sha(bytes(200)), "kept": False},
    ]
    assert (store / "a.txt").read_bytes() == b"hello\n" and not (store / "sub").exists()
    assert "--- /data/log/model.log ---\nloaded\n" in result.stderr
    assert podman_image.containers(f"mer-{req.run_id}") == []
    assert sorted(p.name for p in store.parent.iterdir()) == ["run"]  # no scratch left


async def test_a_stdin_model_runs_unchanged_with_env_workdir_and_no_network(podman_image, ex) -> None:
    show = 'echo "$GREETING|$(pwd)|$MER_RUN_ID|$(ls /sys/class/net)" >&2; cat'
    req = request(podman_image.image, ["sh", "-c", show], env={"GREETING": "hi there"},
                  workdir="/tmp")
    result = await ex.run(req, BOX)
    assert result.status is RunStatus.SUCCEEDED, result.stderr
    assert result.result == req.payload  # the request echoed: its last stdout line
    assert result.stderr.strip() == f"hi there|/tmp|{req.run_id}|lo"
    assert result.artifacts == []


async def test_a_worker_is_one_run_i_container_until_stopped(podman_image, ex) -> None:
    runs = [request(podman_image.image, ["sh", "-c", WORKER], mode="worker") for _ in range(2)]
    answers = []
    for req in runs:
        result = await ex.run(req, BOX)
        assert result.status is RunStatus.SUCCEEDED, result.error
        answers.append(result.result)
    # one container (named by the run that started it) answered both
    assert [a["n"] for a in answers] == [1, 2] and answers[0]["host"] == answers[1]["host"]
    [info] = ex.workers()
    assert info.requests == 2
    name = f"mer-{runs[0].run_id}"
    assert podman_image.containers(name) == [name]
    assert await ex.stop_worker(BOX, "m") == 1
    assert ex.workers() == [] and podman_image.containers(name) == []


async def test_a_timeout_kills_and_removes_the_container(podman_image, ex) -> None:
    req = request(podman_image.image, ["sleep", "30"], timeout=1)
    result = await ex.run(req, BOX)
    assert result.status is RunStatus.TIMEOUT and result.error == "timed out after 1 s"
    assert podman_image.containers(f"mer-{req.run_id}") == []


async def test_ctrl_c_kills_and_removes_the_container(podman_image, ex) -> None:
    req = request(podman_image.image, ["sh", "-c", "echo started; sleep 30"])
    started = asyncio.Event()
    task = asyncio.ensure_future(ex.run(req, BOX, Sinks(stdout=lambda _: started.set())))
    await asyncio.wait_for(started.wait(), 30)
    assert podman_image.containers(f"mer-{req.run_id}") == [f"mer-{req.run_id}"]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert podman_image.containers(f"mer-{req.run_id}") == []


async def test_a_missing_image_is_one_line(podman_image, ex) -> None:
    req = request("localhost/mer-nope:1", ["true"])
    with pytest.raises(ExecutionError) as err:
        await ex.run(req, BOX)
    assert str(err.value) == ("cannot start m@1: image 'localhost/mer-nope:1' is not on this "
                              "machine; `podman pull` or `podman load` it there first (mer never "
                              "pulls during a run)")


async def test_no_engine_and_a_missing_input_file_are_one_line(ex, monkeypatch, tmp_path) -> None:
    with pytest.raises(ExecutionError, match="^cannot start m@1: input file data=/nonexistent/x "
                                             "does not exist$"):
        await ex.run(request("img", ["true"], input_files={"data": "/nonexistent/x"}), BOX)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ExecutionError, match="^cannot start m@1: the container engine 'docker' "
                                             "is not installed on this machine$"):
        await ex.run(request("img", ["true"]), Server(name="d", kind="container", engine="docker"))
    assert not list(tmp_path.iterdir())  # no scratch directory made


async def test_the_reaper_removes_a_dead_mers_containers_and_scratch(podman_image, ex,
                                                                     tmp_path: Path) -> None:
    token = f"999999:dead-{uuid.uuid4().hex}"
    scratch = tmp_path / ".mer-run-dead"
    scratch.mkdir()
    name = f"mer-{uuid.uuid4()}"
    subprocess.run(["podman", "run", "-d", "--name", name, "--label", f"mer.owner={token}",
                    "--label", f"mer.dir={scratch}", podman_image.image, "sleep", "60"],
                   check=True, capture_output=True)
    assert podman_image.containers(name) == [name]
    assert await ex.kill_group(BOX, None, f"MER_OWNER={token}") is True
    assert podman_image.containers(name) == [] and not scratch.exists()
    assert await ex.kill_group(BOX, None, f"MER_OWNER={token}") is False  # nothing left


def _holds(path: str, words: str) -> bool:
    try:
        return Path(path).read_text(errors="replace").startswith(words)
    except OSError:  # another test's directory, removed meanwhile
        return False


async def test_a_container_run_over_ssh(ssh_podman_image, sshd_server, tmp_path: Path) -> None:
    s = sshd_server.server
    remote = Server(name="rbox", kind="container", host=s.host, port=s.port, user=s.user,
                    identity_file=s.identity_file, known_hosts=s.known_hosts)
    data = tmp_path / "data.txt"
    # This run's own words: other tests' local container runs make /tmp/mer-run-* too.
    words = f"hello {uuid.uuid4().hex}"
    data.write_text(words + "\n")
    store = tmp_path / "store"
    ex = ContainerExecutor(output_cap=64 * 1024, grace=0.5)
    try:
        req = request(ssh_podman_image.image, ["sh", "-c", CONTRACT],
                      input_files={"data.txt": str(data)}, output_dir=str(store))
        result = await ex.run(req, remote)
        assert result.status is RunStatus.SUCCEEDED, result.stderr
        assert result.result == {"same_request": True, "data": words}
        assert [(a.name, a.sha256, a.kept) for a in result.artifacts] == [
            ("a.txt", sha(f"{words}\n".encode()), True), ("sub/b.bin", sha(bytes(200)), True)]
        assert (store / "sub" / "b.bin").read_bytes() == bytes(200)
        assert "--- /data/log/model.log ---\nloaded\n" in result.stderr
        check = await ex.check(remote)
        assert check.reachable and check.message.startswith("podman ")
    finally:
        await ex.close()
    # The remote scratch directory (the one holding this run's words) is gone.
    assert not [d for d in glob.glob("/tmp/mer-run-*/input/data.txt") if _holds(d, words)]
    assert ssh_podman_image.containers(f"mer-{req.run_id}", user=s.user) == []
