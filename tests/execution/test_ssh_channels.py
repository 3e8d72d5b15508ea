"""A pooled SSH connection keeps one session channel open ahead (ssh_channels.py), against
a real sshd: each run starts on the channel opened during the run before it, a spare
that died is replaced instead of failing the run, and a timeout still kills the remote
process (its kill takes the spare)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from mer.domain import RunRequest, RunStatus
from mer.execution.ssh import SshExecutor

MODELS = Path(__file__).resolve().parents[2] / "examples" / "models"
ECHO = RunRequest("echo", "1", ["python3", str(MODELS / "echo.py")], {"input": 1})


async def _spare_of(ex: SshExecutor, server) -> object:
    """The connection's spare once its background open is done."""
    [conn] = ex._connections.values()
    for _ in range(200):
        spare = conn.channels._spare
        if spare is not None:
            return spare
        await asyncio.sleep(0.01)
    raise AssertionError("no spare channel was opened")


async def test_each_run_starts_on_the_channel_opened_during_the_one_before(sshd_server) -> None:
    ex = SshExecutor()
    server = sshd_server.server
    try:
        assert (await ex.run(ECHO, server)).status is RunStatus.SUCCEEDED
        for _ in range(2):
            spare = await _spare_of(ex, server)
            assert not spare.closed
            assert (await ex.run(ECHO, server)).status is RunStatus.SUCCEEDED
            # The run ran on it (and closed it when done); a new spare is on its way.
            assert spare.closed and await _spare_of(ex, server) is not spare
    finally:
        await ex.close()


async def test_a_dead_spare_is_replaced_not_fatal(sshd_server) -> None:
    ex = SshExecutor()
    server = sshd_server.server
    try:
        await ex.run(ECHO, server)
        spare = await _spare_of(ex, server)
        spare.close()  # as a server that closed it would leave it
        assert (await ex.run(ECHO, server)).status is RunStatus.SUCCEEDED
    finally:
        await ex.close()


def _alive(pid: int) -> bool:
    """A live (not zombie) process: sshd runs on this machine."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


async def test_a_timeout_still_kills_the_remote_process(sshd_server) -> None:
    ex = SshExecutor(grace=0.2)
    server = sshd_server.server
    # The shell prints its pid, then becomes `sleep` (same pid).
    slow = RunRequest("slow", "1", ["sh", "-c", "echo $$; exec sleep 60"], {}, timeout=0.3)
    try:
        await ex.run(ECHO, server)
        await _spare_of(ex, server)  # the kill's channel will be the spare
        result = await ex.run(slow, server)
        assert result.status is RunStatus.TIMEOUT
        pid = int(result.stdout.split()[0])
        for _ in range(100):  # the KILL may still be on its way
            if not _alive(pid):
                break
            await asyncio.sleep(0.05)
        assert not _alive(pid)
    finally:
        await ex.close()


async def test_a_started_run_is_handed_over_before_its_thread_opens_the_next_channel() -> None:
    """run_blocking_then: the caller has the result while the thread still works on the
    follow-up; a result that comes after the caller gave up goes to ``unused``."""
    import threading

    from mer.execution.ssh_threads import run_blocking_then

    follow_up_may_end, unused = threading.Event(), []
    assert await run_blocking_then(lambda: "started", lambda _: follow_up_may_end.wait(5),
                                   unused.append) == "started"
    follow_up_may_end.set()  # the caller got here while the follow-up was still waiting

    release = threading.Event()
    waiting = asyncio.ensure_future(run_blocking_then(lambda: release.wait(5) and "late",
                                                      lambda _: None, unused.append))
    await asyncio.sleep(0.05)
    waiting.cancel()
    release.set()
    for _ in range(100):
        if unused:
            break
        await asyncio.sleep(0.01)
    assert unused == ["late"]  # e.g. a channel whose run was cancelled: it is closed


async def test_on_an_open_connection_a_run_starts_from_the_loop(sshd_server, monkeypatch) -> None:
    """Once connected, a oneshot run's channel, command and request go out from the event
    loop (ssh_start.py): no pool thread waits on the server for it."""
    import mer.execution.ssh as ssh

    hops = []
    real = ssh.run_blocking_then

    async def counted(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        hops.append(1)
        return await real(*args, **kwargs)

    monkeypatch.setattr(ssh, "run_blocking_then", counted)
    ex = SshExecutor()
    try:
        for _ in range(5):
            result = await ex.run(ECHO, sshd_server.server)
            assert result.status is RunStatus.SUCCEEDED and result.result["echo"]["input"] == 1
        assert len(hops) == 1  # the first run's connect
        await _spare_of(ex, sshd_server.server)  # and the next run's channel is open ahead
    finally:
        await ex.close()
