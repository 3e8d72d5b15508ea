"""SSH-only behaviour against a real sshd: host keys, client keys, a dying server."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from mer.domain import RunRequest, RunStatus
from mer.errors import ConnectError, HostKeyError
from mer.execution.interface import Sinks
from mer.execution.ssh import SshExecutor, build_remote_command

MODELS = Path(__file__).resolve().parents[2] / "examples" / "models"


def _echo() -> RunRequest:
    return RunRequest("echo", "1", ["python3", str(MODELS / "echo.py")], {"input": 1})


async def test_unknown_host_key_is_refused_then_trusted(sshd_server, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    server = dataclasses.replace(sshd_server.server, known_hosts=str(empty))
    ex = SshExecutor()
    try:
        with pytest.raises(HostKeyError, match=r"not known: ssh-ed25519 SHA256:\S+; .*server trust"):
            await ex.run(_echo(), server)
        check = await ex.check(server)
        assert check.reachable and check.host_key_known is False
        fp = await ex.trust(server)
        assert fp.startswith("ssh-ed25519 SHA256:")
        assert empty.read_text().startswith(f"[127.0.0.1]:{sshd_server.port} ssh-ed25519 ")
        result = await ex.run(_echo(), server)
        assert result.status is RunStatus.SUCCEEDED
        check = await ex.check(server)
        assert check.host_key_known is True and check.latency_ms is not None
    finally:
        await ex.close()


async def test_trust_with_an_expected_fingerprint_records_only_that_key(sshd_server,
                                                                       tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    server = dataclasses.replace(sshd_server.server, known_hosts=str(known))
    ex = SshExecutor()
    try:
        presented = await ex.host_key(server)
        assert not known.exists()  # showing the key records nothing
        with pytest.raises(HostKeyError, match="not the expected SHA256:AAAA; nothing was recorded"):
            await ex.trust(server, expect="SHA256:AAAA")
        assert not known.exists()
        # as ssh-keygen -l prints it: without the key type
        assert await ex.trust(server, expect=presented.split(" ", 1)[1]) == presented
        assert (await ex.check(server)).host_key_known is True
    finally:
        await ex.close()


async def test_changed_host_key_is_refused(sshd_server, tmp_path: Path) -> None:
    import subprocess

    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    kind, b64 = (other.with_suffix(".pub")).read_text().split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd_server.port} {kind} {b64}\n")
    ex = SshExecutor()
    try:
        with pytest.raises(HostKeyError, match="has CHANGED"):
            await ex.run(_echo(), dataclasses.replace(sshd_server.server, known_hosts=str(known)))
    finally:
        await ex.close()


async def test_wrong_client_key_is_refused(sshd_server) -> None:
    server = dataclasses.replace(sshd_server.server, identity_file=str(sshd_server.wrong_key))
    ex = SshExecutor()
    try:
        with pytest.raises(ConnectError, match="refused every key"):
            await ex.run(_echo(), server)
    finally:
        await ex.close()


async def test_unreachable_server_fails_fast(sshd_server) -> None:
    server = dataclasses.replace(sshd_server.server, port=1)
    ex = SshExecutor()
    try:
        with pytest.raises(ConnectError, match="cannot connect"):
            await ex.run(_echo(), server)
        assert (await ex.check(server)).reachable is False
    finally:
        await ex.close()


async def test_server_killed_mid_run_is_lost_and_next_run_reconnects(sshd_server) -> None:
    ex = SshExecutor(grace=0.2)
    server = sshd_server.server
    slow = RunRequest("slow", "1", ["python3", str(MODELS / "slow.py")], {"input": {"seconds": 30}},
                      timeout=60)
    ticks: list[bytes] = []
    try:
        task = asyncio.ensure_future(ex.run(slow, server, Sinks(stdout=ticks.append)))
        for _ in range(200):
            if ticks:
                break
            await asyncio.sleep(0.05)
        t0 = time.monotonic()
        sshd_server.stop()
        result = await asyncio.wait_for(task, 20)
        assert result.status is RunStatus.LOST and "connection" in result.error
        assert time.monotonic() - t0 < 20
        sshd_server.start()
        again = await ex.run(_echo(), server)
        assert again.status is RunStatus.SUCCEEDED
    finally:
        if sshd_server.proc is None:
            sshd_server.start()
        await ex.close()


def test_remote_command_quotes_everything() -> None:
    import shlex

    req = RunRequest("m", "1", ["prog"], {}, workdir="/d ir", env={"A": "x y"})
    cmd = build_remote_command(req, ["prog", "$(id)", "; rm -rf /"])
    assert cmd.startswith(f"echo $$; export MER_RUN_ID={req.run_id}; cd '/d ir' || exit 126; "
                          f"export 'A=x y'; exec prog ")
    assert shlex.split(cmd.split("exec ", 1)[1]) == ["prog", "$(id)", "; rm -rf /"]


@pytest.mark.parametrize("shell", ["bash", "dash"])
def test_the_model_gets_its_environment_from_one_exec(shell: str, tmp_path: Path) -> None:
    """Ordinary names are exported by the shell (no `env` between it and the model); a
    name bash keeps read-only still reaches the model, through env."""
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    show = ["python3", "-c", "import os; print(os.environ['A'], os.environ['UID'])"]
    req = RunRequest("m", "1", show, {}, env={"A": "x y; $(id)", "UID": "7"})
    line = build_remote_command(req, show)
    out = subprocess.run([shell, "-c", line], capture_output=True, text=True, timeout=30)
    assert out.stdout.splitlines()[1:] == ["x y; $(id) 7"], out.stderr
    plain = RunRequest("m", "1", show, {}, env={"A": "a", "B": "b"})
    assert " env " not in build_remote_command(plain, show)


async def test_runs_beyond_the_servers_session_limit_go_on_another_connection(
        sshd_server, capfd: pytest.CaptureFixture[str]) -> None:
    # sshd's MaxSessions (10 by default) counts the sessions of one connection: runs
    # beyond it were refused ("lost the connection ... Connect failed").
    from tests.fixtures_sshd import start_sshd

    sshd = start_sshd(max_sessions=3)
    ex = SshExecutor(grace=0.5)
    try:
        request = RunRequest("sleep", "1", ["sleep", "0.5"], {})
        # Twice: the first runs connect on pool threads; the second start on the loop
        # (ssh_start.py) and are refused there.
        for _ in range(2):
            results = await asyncio.gather(*(ex.run(request, sshd.server) for _ in range(10)))
            assert [r.status for r in results] == [RunStatus.SUCCEEDED] * 10
        (head,) = ex._connections.values()
        chain = 1
        while head.more is not None:
            chain, head = chain + 1, head.more
        assert chain >= 3  # 10 runs at once, at most 3 sessions a connection
        assert (await ex.check(sshd.server)).reachable
    finally:
        await ex.close()
        sshd.cleanup()
    assert "open FAILED" not in capfd.readouterr().err  # refusals mer handled are not errors
