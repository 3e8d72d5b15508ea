"""Executors against real processes: locally and over a real sshd (same tests, both)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mer.domain import RunRequest, RunStatus, Server
from mer.errors import WorkerError
from mer.execution.interface import Sinks
from mer.execution.local import LocalExecutor
from mer.execution.ssh import SshExecutor

MODELS = Path(__file__).resolve().parents[2] / "examples" / "models"
CAP = 64 * 1024


class Target:
    def __init__(self, executor: Any, server: Server, python: str) -> None:
        self.executor, self.server, self.python = executor, server, python

    def request(self, model: str, payload: dict[str, Any] | None = None, **kw: Any) -> RunRequest:
        command = kw.pop("command", None) or [self.python, str(MODELS / f"{model}.py")]
        return RunRequest(model=model, version="1", command=command, payload=payload or {}, **kw)

    async def run(self, model: str, payload: dict[str, Any] | None = None, sinks: Sinks | None = None,
                  **kw: Any):
        return await self.executor.run(self.request(model, payload, **kw), self.server, sinks)


@pytest.fixture(params=["local", "ssh"])
async def target(request: pytest.FixtureRequest) -> AsyncIterator[Target]:
    if request.param == "local":
        ex: Any = LocalExecutor(output_cap=CAP, grace=0.5)
        yield Target(ex, Server(name="local"), sys.executable)
    else:
        sshd = request.getfixturevalue("sshd_server")
        ex = SshExecutor(output_cap=CAP, grace=0.5)
        yield Target(ex, sshd.server, "python3")
    await ex.close()


def _remote_ps(target: Target) -> str:
    # -ww: whole command lines (without a terminal ps cuts them to the width it guesses).
    return subprocess.run(["ps", "-eww", "-o", "pid,pgid,args"], capture_output=True, text=True).stdout


async def test_echo_round_trip(target: Target) -> None:
    got: list[bytes] = []
    result = await target.run("echo", {"input": {"x": [1, 2]}, "model": "echo"},
                              Sinks(stdout=got.append))
    assert result.status is RunStatus.SUCCEEDED and result.exit_code == 0
    assert result.result == {"echo": {"input": {"x": [1, 2]}, "model": "echo"}}
    assert b"".join(got).startswith(b'{"echo"')
    assert "got input" in result.stderr and result.bytes_in > 0


async def test_failure_and_exit_code(target: Target) -> None:
    result = await target.run("crash")
    assert result.status is RunStatus.FAILED and result.exit_code == 3
    assert "crashed on purpose" in result.stderr


async def test_arguments_reach_the_model_literally(target: Target, tmp_path: Path) -> None:
    marker = f"/tmp/mer-injection-{uuid.uuid4().hex}"
    args = [f"; touch {marker}", "$(id)", "-n", "`id`", "a b", "'q'", '"dq"', "*", "\\"]
    code = "import json, sys; print(json.dumps({'argv': sys.argv[1:]}))"
    result = await target.run("argv", command=[target.python, "-c", code, *args])
    assert result.status is RunStatus.SUCCEEDED, result.stderr
    assert result.result == {"argv": args}
    assert not Path(marker).exists()


async def test_worker_serves_many_requests_on_one_process(target: Target) -> None:
    pids = set()
    for i in range(1000):
        r = await target.run("linear_worker", {"input": {"x": [1, i]}, "weights": {"w": [2, 1]},
                                               "parameters": {"bias": 0.5}}, mode="worker")
        assert r.status is RunStatus.SUCCEEDED and r.result == {"y": 2.5 + i}
        pids.add(target.executor.workers()[0].pid)
    assert len(pids) == 1
    assert target.executor.workers()[0].requests == 1000
    bad = await target.run("linear_worker", {"input": {"x": [1]}, "weights": {"w": [2, 1]}}, mode="worker")
    assert bad.status is RunStatus.FAILED and "has 1 values" in bad.error
    assert await target.executor.stop_worker(target.server, "linear_worker") == 1
    assert target.executor.workers() == []


async def test_mer_framing_worker_and_rejected_request(target: Target) -> None:
    logs: list[bytes] = []
    r = await target.run("mer_echo", {"input": "hello"}, Sinks(stdout=logs.append),
                         mode="worker", framing="mer", timeout=5)
    assert r.status is RunStatus.SUCCEEDED and r.result == "HELLO"
    assert b"loading" in b"".join(logs)  # load logs before the ready marker
    rejected = await target.run("mer_echo", {"input": "bad"}, mode="worker", framing="mer", timeout=2)
    assert rejected.status is RunStatus.TIMEOUT and "rejected" in rejected.stderr
    again = await target.run("mer_echo", {"input": "still here"}, mode="worker", framing="mer", timeout=10)
    assert again.status is RunStatus.SUCCEEDED and again.result == "STILL HERE", again
    assert len(target.executor.workers()) == 1


async def test_worker_that_dies_is_restarted(target: Target) -> None:
    r = await target.run("linear_worker", {"input": {"x": [1]}, "weights": {"w": [1]}}, mode="worker")
    pid = target.executor.workers()[0].pid
    await target.executor.stop_worker(target.server, "linear_worker")
    r = await target.run("linear_worker", {"input": {"x": [3]}, "weights": {"w": [1]}}, mode="worker")
    assert r.result == {"y": 3.0} and target.executor.workers()[0].pid != pid


async def test_worker_without_ready_line_fails_clearly(target: Target) -> None:
    with pytest.raises(WorkerError, match="exited with status 3 before it was ready"):
        await target.run("crash", mode="worker", timeout=5)


async def test_large_output_on_both_streams_without_reading_stdin(target: Target) -> None:
    t0 = time.monotonic()
    r = await target.run("noisy", command=[target.python, str(MODELS / "noisy.py"), "50"], timeout=120)
    assert r.status is RunStatus.SUCCEEDED
    assert r.bytes_out == 2 * 50 * 1024 * 1024
    assert len(r.stdout) < CAP + 200 and "bytes not kept" in r.stdout
    assert r.stdout.startswith("x") and r.stderr.endswith("x\n")
    assert time.monotonic() - t0 < 120


async def test_a_large_request_reaches_the_model_whole(target: Target) -> None:
    # Over 32 kB: over SSH it is written by a task off the loop, not in one send.
    code = "import json, sys; print(json.dumps({'n': len(json.loads(sys.stdin.read())['input'])}))"
    r = await target.run("big", {"input": "z" * 3_000_000},
                         command=[target.python, "-c", code], timeout=60)
    assert r.status is RunStatus.SUCCEEDED, r.stderr
    assert r.result == {"n": 3_000_000} and r.bytes_in > 3_000_000


async def test_a_sink_that_fails_fails_the_run_with_its_error(target: Target) -> None:
    def refuse(chunk: bytes) -> None:
        raise RuntimeError("the sink broke")

    with pytest.raises(RuntimeError, match="the sink broke"):
        await target.run("echo", {"input": 1}, Sinks(stdout=refuse), timeout=30)


async def test_one_megabyte_line_without_newline(target: Target) -> None:
    code = "import sys; sys.stdout.write('y' * 1048576)"
    seen: list[bytes] = []
    r = await target.run("long", command=[target.python, "-c", code], sinks=Sinks(stdout=seen.append))
    assert r.status is RunStatus.SUCCEEDED and sum(map(len, seen)) == 1048576
    assert r.result is None


async def test_invalid_utf8_and_nul_bytes(target: Target) -> None:
    code = "import os; os.write(1, b'ok\\xff\\xfe\\x00end\\n'); os.write(2, b'\\xc3(\\n')"
    r = await target.run("bytes", command=[target.python, "-c", code])
    assert r.status is RunStatus.SUCCEEDED
    assert r.stdout == "ok\ufffd\ufffd\x00end\n" and "\ufffd" in r.stderr


async def test_timeout_kills_the_whole_process_group(target: Target) -> None:
    # Names no other test (of this run or another) uses: the check below reads all of ps.
    tag = uuid.uuid4().hex[:8]
    sleep = f"sleep {800000 + int(tag, 16) % 99999}"
    r = await target.run("sleeper", command=["sh", "-c", f"{sleep} | cat; echo {tag}"],
                         timeout=1)
    assert r.status is RunStatus.TIMEOUT and "timed out" in r.error
    await asyncio.sleep(0.3)
    ps = _remote_ps(target)
    assert f"echo {tag}" not in ps and sleep not in ps


async def test_cancel_mid_run_kills_the_model(target: Target) -> None:
    ticks: list[bytes] = []
    tag = f"mer-cancel-{uuid.uuid4().hex}"  # slow.py ignores its argument; ps shows it
    task = asyncio.ensure_future(target.run("slow", {"input": {"seconds": 60}},
                                            Sinks(stdout=ticks.append),
                                            command=[target.python, str(MODELS / "slow.py"), tag]))
    for _ in range(100):
        if ticks:
            break
        await asyncio.sleep(0.05)
    assert tag in _remote_ps(target)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.3)
    assert tag not in _remote_ps(target)


async def test_a_pipe_held_by_an_escaped_child_is_let_go_at_the_timeout(tmp_path: Path) -> None:
    # The model's child leaves its session (so no group kill reaches it) and keeps the
    # model's stdout: the run ends at its timeout, and mer keeps none of its pipes.
    def pipes() -> set[str]:  # the pipes this process holds
        found = set()
        for fd in Path("/proc/self/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue  # closed meanwhile
            if target.startswith("pipe:"):
                found.add(target)
        return found

    pid_file = tmp_path / "escaped.pid"
    ex = LocalExecutor(grace=0.2)
    before = pipes()
    script = f"setsid sh -c 'echo $$ > {pid_file}; exec sleep 60' & echo started"
    r = await ex.run(RunRequest("m", "1", ["sh", "-c", script], {}, timeout=1), Server(name="local"))
    try:
        assert r.status is RunStatus.TIMEOUT and "started" in r.stdout
        assert pipes() - before == set()
    finally:
        for _ in range(50):
            if pid_file.exists() and pid_file.read_text().strip():
                subprocess.run(["kill", "-9", pid_file.read_text().strip()], check=False)
                break
            await asyncio.sleep(0.05)
        await ex.close()


async def test_a_run_leaves_nothing_for_the_garbage_collector(target: Target) -> None:
    # A run's objects (process, pipes or channel, futures) are freed by reference
    # counting as it ends; a reference cycle left ~18 of them a local run and ~57 an SSH
    # run for the collector.
    import gc

    for _ in range(3):  # connected, spare channels open: what stays is made
        await target.run("echo", command=["true"])
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(5):
            r = await target.run("echo", command=["true"])
            assert r.status is RunStatus.SUCCEEDED, r.error
        gc.collect()
        # What a run makes (anything else in this process may leave its own garbage).
        left = sorted({type(o).__name__ for o in gc.garbage
                       if type(o).__module__.startswith(("mer.", "subprocess", "paramiko"))})
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert left == []


async def test_a_local_run_leaves_no_reference_cycle(monkeypatch: pytest.MonkeyPatch) -> None:
    # What a run made (its process, pipes, futures) is freed as the run ends, not when
    # the garbage collector comes by: a request the pipe could not take at once (the
    # model reads it late) is the path that watches the pipe again.
    import gc
    import weakref

    import mer.execution.local as local
    from mer.execution.local_pipes import PipedProcess, start_piped

    made: list[weakref.ref[PipedProcess]] = []

    def watched(command: list[str], **popen: object) -> PipedProcess:
        process = start_piped(command, **popen)
        made.append(weakref.ref(process))
        return process

    monkeypatch.setattr(local, "start_piped", watched)
    ex = LocalExecutor()
    gc.collect()
    gc.disable()
    try:
        big = {"input": "x" * 300_000}  # more than a pipe holds
        for request in (RunRequest("m", "1", ["cat"], {}),
                        RunRequest("m", "1", ["sh", "-c", "sleep 0.2; cat"], big)):
            r = await ex.run(request, Server(name="local"))
            assert r.status is RunStatus.SUCCEEDED, r.error
        del r
        assert len(made) == 2 and all(ref() is None for ref in made)
    finally:
        gc.enable()
        await ex.close()


async def test_concurrent_runs_share_one_connection(target: Target) -> None:
    results = await asyncio.gather(*(target.run("echo", {"input": i}) for i in range(8)))
    assert [r.result["echo"]["input"] for r in results] == list(range(8))
    if isinstance(target.executor, SshExecutor):
        assert len(target.executor._connections) == 1


async def test_missing_program_is_a_clear_error() -> None:
    from mer.errors import ExecutionError

    ex = LocalExecutor()
    with pytest.raises(ExecutionError, match="not found"):
        await ex.run(RunRequest("m", "1", ["/nonexistent/model"], {}), Server(name="local"))


async def test_workdir_is_honoured(target: Target, tmp_path: Path) -> None:
    r = await target.run("cwd", command=[target.python, "-c", "import os; print(os.getcwd())"],
                         workdir="/tmp", env={"MER_TEST_VAR": "a b"})
    assert r.stdout.strip() == "/tmp"
    r = await target.run("env", command=[target.python, "-c",
                                         "import os; print(os.environ['MER_TEST_VAR'])"],
                         env={"MER_TEST_VAR": "a b; $(id)"})
    assert r.stdout.strip() == "a b; $(id)"


async def test_without_pidfds_a_local_run_learns_its_exit_from_a_thread(monkeypatch) -> None:
    # Kernels before 5.3 (and other systems) have no pidfd: a thread waits for the exit.
    import mer.execution.local_pipes as pipes

    def no_pidfd(pid: int) -> int:
        raise OSError("pidfd_open: not supported")

    monkeypatch.setattr(pipes.os, "pidfd_open", no_pidfd)
    ex = LocalExecutor(grace=0.2)
    try:
        ok = await ex.run(RunRequest("m", "1", ["sh", "-c", "cat; echo done"], {"input": 1}),
                          Server(name="local"))
        assert ok.status is RunStatus.SUCCEEDED and ok.stdout.endswith("done\n")
        slow = await ex.run(RunRequest("m", "1", ["sleep", "30"], {}, timeout=0.5), Server(name="local"))
        assert slow.status is RunStatus.TIMEOUT  # the kill, too, learns the exit that way
    finally:
        await ex.close()
