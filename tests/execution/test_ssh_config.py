"""SSH hosts resolved through an OpenSSH client config, as `ssh` resolves them: HostName,
Port, User, IdentityFile and ProxyJump; the server's own fields win. Against a real sshd
on 127.0.0.1 (the jump host and the target are both that sshd, under different names)."""

from __future__ import annotations

import socket
from pathlib import Path

import paramiko
import pytest

from mer.domain import RunRequest, RunStatus, Server
from mer.errors import ConfigError, ConnectError, HostKeyError
from mer.execution.ssh import SshExecutor
from mer.execution.ssh_config import SshConfigFile, resolve_identity

MODELS = Path(__file__).resolve().parents[2] / "examples" / "models"


def _echo() -> RunRequest:
    return RunRequest("echo", "1", ["python3", str(MODELS / "echo.py")], {"input": 1})


def _host(name: str, port: int, user: str, key: Path, hostname: str = "127.0.0.1",
          extra: str = "") -> str:
    return (f"Host {name}\n  HostName {hostname}\n  Port {port}\n  User {user}\n"
            f"  IdentityFile {key}\n{extra}")


@pytest.fixture
def sshd(sshd_server):
    return sshd_server


@pytest.fixture
def config(sshd, tmp_path: Path) -> Path:
    """gpu1: the sshd by an alias (its first IdentityFile does not exist); jump: the sshd
    as 127.0.0.1; target and plain: the sshd as `localhost`, so its known_hosts name
    differs from the jump host's, target through jump and plain directly."""
    p, u, k = sshd.port, sshd.user, sshd.identity
    path = tmp_path / "ssh_config"
    path.write_text(
        "Host gpu1\n  IdentityFile %d/.ssh/mer-test-no-such-key\n"
        + _host("gpu1", p, u, k).split("\n", 1)[1]
        + _host("jump", p, u, k)
        + _host("target", p, u, k, "localhost", "  ProxyJump jump\n")
        + _host("chain", p, u, k, "localhost", f"  ProxyJump jump,{u}@127.0.0.1:{p}\n")
        + _host("plain", p, u, k, "localhost")
        + _host("elsewhere", 1, "nobody-here", sshd.wrong_key)
        + f"Host 127.0.0.1\n  IdentityFile {k}\n"
    )
    return path


@pytest.fixture
def known_hosts(sshd, tmp_path: Path) -> Path:
    """The sshd's key under both its names."""
    line = sshd.known_hosts.read_text().split(" ", 1)[1]
    path = tmp_path / "known_hosts"
    path.write_text(f"[127.0.0.1]:{sshd.port} {line}[localhost]:{sshd.port} {line}")
    return path


def _server(name: str, host: str, known_hosts: Path, **fields) -> Server:
    return Server(name=name, kind="ssh", host=host, known_hosts=str(known_hosts), **fields)


# -- resolution alone (no connection) ------------------------------------------------------

def test_the_config_fills_what_the_server_leaves_out(config: Path, sshd) -> None:
    cfg = SshConfigFile(config)
    got = resolve_identity(cfg, "gpu1", known_hosts="kh")
    assert (got.host, got.port, got.user) == ("127.0.0.1", sshd.port, sshd.user)
    assert got.identity_file == str(sshd.identity.resolve())  # the first one that exists
    assert got.jump is None
    mine = resolve_identity(cfg, "gpu1", known_hosts="kh", port=2222, user="me",
                            identity_file=str(sshd.wrong_key))
    assert (mine.host, mine.port, mine.user) == ("127.0.0.1", 2222, "me")
    assert mine.identity_file == str(sshd.wrong_key.resolve())


def test_proxyjump_chain_resolves_each_hop_through_the_config(config: Path, sshd) -> None:
    chain = resolve_identity(SshConfigFile(config), "chain", known_hosts="kh")
    assert [(h.alias, h.host, h.port) for h in chain.route()] == [
        ("jump", "127.0.0.1", sshd.port), ("127.0.0.1", "127.0.0.1", sshd.port),
        ("chain", "localhost", sshd.port)]
    assert chain.jump is not None and chain.jump.user == sshd.user
    assert chain.jump.identity_file == str(sshd.identity.resolve())  # from `Host 127.0.0.1`


def test_a_missing_config_resolves_nothing(tmp_path: Path) -> None:
    got = resolve_identity(SshConfigFile(tmp_path / "none"), "gpu1", known_hosts="kh")
    assert (got.host, got.port, got.identity_file, got.jump) == ("gpu1", 22, None, None)


@pytest.mark.parametrize(("text", "message"), [
    ("Host gpu1\n  justoneword\n", "Unparsable line justoneword"),
    ("Host gpu1\n  Port ssh\n", "port 'ssh' of gpu1 is not a port number"),
    ("Host gpu1\n  ProxyJump gpu1\n", "ProxyJump chain of gpu1 passes more than 8 hosts"),
    ("Host gpu1\n  ProxyJump me@-oProxyCommand=x\n", "ProxyJump 'me@-oProxyCommand=x' of gpu1 is not"),
])
def test_a_malformed_config_is_one_line_naming_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "ssh_config"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        resolve_identity(SshConfigFile(path), "gpu1", known_hosts="kh")
    assert str(err.value).startswith(f"SSH config {path}: ")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_proxycommand_is_refused_not_ignored(tmp_path: Path) -> None:
    path = tmp_path / "ssh_config"
    path.write_text("Host gpu1\n  ProxyCommand nc %h %p\n")
    with pytest.raises(ConnectError, match="gpu1 has a ProxyCommand in .*use ProxyJump"):
        resolve_identity(SshConfigFile(path), "gpu1", known_hosts="kh")


# -- against the real sshd ------------------------------------------------------------------


@pytest.mark.ssh
async def test_an_alias_runs_and_pings_through_the_config(config: Path, known_hosts: Path) -> None:
    ex = SshExecutor(ssh_config=str(config))
    server = _server("gpu1", "gpu1", known_hosts)
    try:
        assert (await ex.run(_echo(), server)).status is RunStatus.SUCCEEDED
        check = await ex.check(server)
        assert check.reachable and check.host_key_known is True, check.message
    finally:
        await ex.close()


@pytest.mark.ssh
async def test_server_fields_win_over_the_config(config: Path, known_hosts: Path, sshd) -> None:
    ex = SshExecutor(ssh_config=str(config))
    try:
        with pytest.raises(ConnectError, match=r"cannot connect to x \(127.0.0.1:1\)"):
            await ex.run(_echo(), _server("x", "elsewhere", known_hosts))
        mine = _server("y", "elsewhere", known_hosts, port=sshd.port, user=sshd.user,
                       identity_file=str(sshd.identity))
        assert (await ex.run(_echo(), mine)).status is RunStatus.SUCCEEDED
    finally:
        await ex.close()


@pytest.mark.ssh
async def test_a_malformed_config_fails_the_run_and_the_ping(tmp_path: Path, known_hosts: Path) -> None:
    path = tmp_path / "ssh_config"
    path.write_text("Host gpu1\n  justoneword\n")
    ex = SshExecutor(ssh_config=str(path))
    try:
        for attempt in (ex.run(_echo(), _server("gpu1", "gpu1", known_hosts)),
                        ex.check(_server("gpu1", "gpu1", known_hosts))):
            with pytest.raises(ConfigError, match=f"SSH config {path}: Unparsable line"):
                await attempt
    finally:
        await ex.close()


@pytest.mark.ssh
async def test_proxyjump_runs_through_the_jump_host(config: Path, known_hosts: Path) -> None:
    ex = SshExecutor(ssh_config=str(config))
    server = _server("target", "target", known_hosts)
    try:
        assert (await ex.run(_echo(), server)).status is RunStatus.SUCCEEDED
        [conn] = ex._connections.values()
        assert conn.jump is not None and conn.jump.active()
        assert conn.jump.identity.host == "127.0.0.1" and conn.identity.host == "localhost"
        assert isinstance(conn.transport.sock, paramiko.Channel)  # inside the jump's connection
        assert (await ex.check(server)).host_key_known is True
        await ex.close()
        assert conn.transport is None and conn.jump is None  # both closed
        chain = _server("chain", "chain", known_hosts)
        assert (await ex.run(_echo(), chain)).status is RunStatus.SUCCEEDED
        [conn] = ex._connections.values()
        assert conn.jump is not None and conn.jump.jump is not None and conn.jump.jump.active()
    finally:
        await ex.close()


@pytest.mark.ssh
async def test_each_route_has_its_own_pooled_connection(config: Path, known_hosts: Path) -> None:
    """`target` and `plain` are the same host, port, user and key; only the jump differs."""
    ex = SshExecutor(ssh_config=str(config))
    target = _server("target", "target", known_hosts)
    plain = _server("plain", "plain", known_hosts)
    try:
        for server in (target, plain, target, plain):
            assert (await ex.run(_echo(), server)).status is RunStatus.SUCCEEDED
        assert len(ex._connections) == 2
        by_route = {c.identity.jump is not None: c for c in ex._connections.values()}
        assert isinstance(by_route[True].transport.sock, paramiko.Channel)
        assert isinstance(by_route[False].transport.sock, socket.socket)
    finally:
        await ex.close()


@pytest.mark.ssh
async def test_a_wrong_key_on_the_jump_host_is_named(config: Path, known_hosts: Path, sshd) -> None:
    text = config.read_text().replace(f"Host jump\n  HostName 127.0.0.1\n  Port {sshd.port}\n"
                                      f"  User {sshd.user}\n  IdentityFile {sshd.identity}",
                                      f"Host jump\n  HostName 127.0.0.1\n  Port {sshd.port}\n"
                                      f"  User {sshd.user}\n  IdentityFile {sshd.wrong_key}")
    assert text != config.read_text()
    config.write_text(text)
    ex = SshExecutor(ssh_config=str(config))
    try:
        with pytest.raises(ConnectError, match=r"\(jump host jump of target\) refused every key"):
            await ex.run(_echo(), _server("target", "target", known_hosts))
    finally:
        await ex.close()


@pytest.mark.ssh
async def test_an_unknown_jump_host_key_is_refused_then_trusted(config: Path, tmp_path: Path,
                                                                sshd) -> None:
    """Only the target's key is known: the jump host's is refused with its own line; the
    `server trust` that line names records it."""
    line = sshd.known_hosts.read_text().split(" ", 1)[1]
    known = tmp_path / "only_target"
    known.write_text(f"[localhost]:{sshd.port} {line}")
    server = _server("target", "target", known)
    ex = SshExecutor(ssh_config=str(config))
    try:
        with pytest.raises(HostKeyError) as err:
            await ex.run(_echo(), server)
        assert str(err.value).startswith(
            f"host key of jump host jump of target ([127.0.0.1]:{sshd.port}) is not known: ssh-ed25519 SHA256:")
        assert str(err.value).endswith("; check it, then run `server trust target` to trust it")
        check = await ex.check(server)
        assert check.reachable and check.host_key_known is False and "jump host jump" in check.message
        shown = await ex.host_key(server)  # what a terminal asks about: the jump host's key
        assert shown.endswith(f" (jump host jump of target, [127.0.0.1]:{sshd.port})")
        assert await ex.trust(server, expect=shown) == shown
        assert known.read_text().splitlines()[-1].startswith(f"[127.0.0.1]:{sshd.port} ssh-ed25519 ")
        assert (await ex.run(_echo(), server)).status is RunStatus.SUCCEEDED
    finally:
        await ex.close()


@pytest.mark.ssh
async def test_trust_walks_the_route_one_confirmed_key_at_a_time(config: Path, tmp_path: Path,
                                                                 sshd) -> None:
    """Neither key is known. A confirmed fingerprint records one key (the jump host's,
    then the target's); --yes (no fingerprint) records every unknown key at once."""
    known = tmp_path / "empty"
    server = _server("target", "target", known)
    ex = SshExecutor(ssh_config=str(config))
    try:
        first = await ex.host_key(server)
        assert "jump host jump" in first
        with pytest.raises(HostKeyError, match="jump host jump of target presents .* not the expected SHA256:AAAA"):
            await ex.trust(server, expect="SHA256:AAAA")
        assert not known.exists()
        await ex.trust(server, expect=first)
        with pytest.raises(HostKeyError, match=rf"host key of target \(\[localhost\]:{sshd.port}\) is not known"):
            await ex.run(_echo(), server)
        second = await ex.host_key(server)
        assert "jump host" not in second
        assert await ex.trust(server, expect=second) == second
        assert (await ex.run(_echo(), server)).status is RunStatus.SUCCEEDED

        known.unlink()
        fresh = SshExecutor(ssh_config=str(config))
        try:
            both = await fresh.trust(server)
            assert both == f"{first}; {second}"
            assert len(known.read_text().splitlines()) == 2
            assert (await fresh.run(_echo(), server)).status is RunStatus.SUCCEEDED
            assert await fresh.trust(server) == second  # nothing new: nothing appended
            assert len(known.read_text().splitlines()) == 2
        finally:
            await fresh.close()
    finally:
        await ex.close()
