"""SSH connections (paramiko): opening, host-key checking, authentication, and the
thread pool the blocking paramiko calls run on. The executor (ssh.py) pools them; the
remote processes (ssh_process.py) run on their channels.

Speed: paramiko's own socket leaves Nagle's algorithm on, which stalls every exchange by
~40 ms; we open the TCP socket ourselves with TCP_NODELAY (BASELINES.md: 44 ms -> 2 ms
per exec). Calls that wait on the server (connect, open a channel, start a command,
a large write) run on a dedicated thread pool, never on the event loop.

Safety: host keys are checked against a known_hosts file (``[host]:port`` entries for
other ports than 22); an unknown or changed key is refused with its fingerprint until
``trust`` records it. Keys come from the server's identity file, the SSH agent or the
default key files; no password is ever used or stored.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import hashlib
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar, TypeVarTuple, Unpack

import paramiko

from mer.domain import Server
from mer.errors import ConnectError, ExecutionError, HostKeyError
from mer.execution.base import ConnectionLost

__all__ = ["Connection", "Identity", "fingerprint", "run_blocking", "trust_host_key"]

CONNECT_TIMEOUT = 10.0
KEEPALIVE = 10
_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=64, thread_name_prefix="mer-ssh")


T = TypeVar("T")
Ts = TypeVarTuple("Ts")

def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH-style SHA256 fingerprint of a host key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return f"{key.get_name()} SHA256:{base64.b64encode(digest).decode().rstrip('=')}"


def _host_key_name(identity: Identity) -> str:
    return identity.host if identity.port == 22 else f"[{identity.host}]:{identity.port}"


async def run_blocking(fn: Callable[[Unpack[Ts]], T], *args: *Ts) -> T:
    """Run a paramiko call that may wait on the server, off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(_POOL, fn, *args)


@dataclass(frozen=True, slots=True)
class Identity:
    """Everything that decides who connects to what: a pooled connection serves only
    servers whose identity equals the one it was opened for."""

    host: str
    port: int
    user: str
    identity_file: str | None  # resolved path; None: agent and default keys
    known_hosts: str  # the resolved file actually checked


class Connection:
    """One authenticated paramiko Transport for one connection identity, shared by the
    runs of every server with that identity."""

    def __init__(self, server: Server, identity: Identity) -> None:
        self.server = server
        self.identity = identity
        self.known_hosts = Path(identity.known_hosts)
        self.transport: paramiko.Transport | None = None
        self.host_key: paramiko.PKey | None = None

    def active(self) -> bool:
        return self.transport is not None and self.transport.is_active()

    def _open_transport(self) -> paramiko.Transport:
        s = self.server
        try:
            sock = socket.create_connection((s.host, s.port or 22), timeout=CONNECT_TIMEOUT)
        except OSError as err:
            raise ConnectError(
                f"cannot connect to {s.name} ({s.host}:{s.port or 22}): {err.strerror or err}"
            ) from err
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Liveness deadline: a server that vanishes without closing the connection (power
        # loss, a cut network) is declared dead after ~KEEPALIVE + 3 * 5 s instead of the
        # kernel's default two hours, and its runs end as `lost`.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in (("TCP_KEEPIDLE", KEEPALIVE), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3)):
            if hasattr(socket, name):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
        transport = paramiko.Transport(sock)
        try:
            transport.start_client(timeout=CONNECT_TIMEOUT)
        except (paramiko.SSHException, OSError, EOFError) as err:
            transport.close()
            raise ConnectError(f"SSH handshake with {s.name} failed: {err}") from err
        self.host_key = transport.get_remote_server_key()
        return transport

    def _check_host_key(self, key: paramiko.PKey) -> None:
        s = self.server
        name = _host_key_name(self.identity)
        try:
            known = paramiko.HostKeys(str(self.known_hosts)) if self.known_hosts.exists() else None
        except (OSError, paramiko.SSHException) as err:
            raise HostKeyError(f"cannot read known_hosts {self.known_hosts}: {err}") from err
        entry = known.lookup(name) if known is not None else None
        if entry is None or key.get_name() not in entry:
            raise HostKeyError(
                f"host key of {s.name} ({name}) is not known: {fingerprint(key)}; "
                f"check it, then run `server trust {s.name}` to trust it"
            )
        if entry[key.get_name()] != key:
            raise HostKeyError(
                f"host key of {s.name} ({name}) has CHANGED (now {fingerprint(key)}); someone "
                f"may be intercepting the connection. If the change is expected, remove the old "
                f"entry from {self.known_hosts} and run `server trust {s.name}`"
            )

    def _keys(self) -> list[paramiko.PKey]:
        s = self.server
        if self.identity.identity_file:
            path = Path(self.identity.identity_file)
            try:
                return [paramiko.PKey.from_path(str(path))]
            except (OSError, paramiko.SSHException, ValueError) as err:
                raise ConnectError(f"cannot load the identity file {path} of {s.name}: {err}") from err
        keys: list[paramiko.PKey] = list(paramiko.Agent().get_keys())
        for name in ("id_ed25519", "id_ecdsa", "id_rsa"):
            path = Path.home() / ".ssh" / name
            if path.exists():
                with contextlib.suppress(OSError, paramiko.SSHException, ValueError):
                    keys.append(paramiko.PKey.from_path(str(path)))
        return keys

    def connect(self) -> None:
        """Blocking: open, check the host key, authenticate."""
        s = self.server
        transport = self._open_transport()
        try:
            assert self.host_key is not None
            self._check_host_key(self.host_key)
            user = self.identity.user
            keys = self._keys()
            if not keys:
                raise ConnectError(f"no SSH key for {s.name}: set the server's identity file or "
                                   f"load a key into ssh-agent")
            last: Exception | None = None
            for key in keys:
                try:
                    transport.auth_publickey(user, key)
                    break
                except paramiko.AuthenticationException as err:
                    last = err
                except (paramiko.SSHException, OSError, EOFError) as err:
                    raise ConnectError(f"SSH authentication with {s.name} failed: {err}") from err
            if not transport.is_authenticated():
                raise ConnectError(
                    f"{user}@{s.host} refused every key offered ({last}); check the server's "
                    f"identity file and authorized_keys"
                )
            transport.set_keepalive(KEEPALIVE)
        except BaseException:
            transport.close()
            raise
        self.transport = transport

    def open_channel(self) -> paramiko.Channel:
        assert self.transport is not None
        try:
            return self.transport.open_session(timeout=CONNECT_TIMEOUT)
        except (paramiko.SSHException, OSError, EOFError) as err:
            raise ConnectionLost(str(err) or "channel refused") from err

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None


def fetch_host_key(server: Server, identity: Identity) -> paramiko.PKey:
    """Blocking: the key the server presents now (nothing is checked or recorded)."""
    conn = Connection(server, identity)
    transport = conn._open_transport()
    transport.close()
    assert conn.host_key is not None
    return conn.host_key


def same_fingerprint(actual: str, expected: str) -> bool:
    """``ssh-ed25519 SHA256:abc`` matches itself and ``SHA256:abc`` (as ssh-keygen -l
    prints it, without the key type)."""
    expected = expected.strip()
    return actual == expected or actual.split(" ", 1)[-1] == expected


def trust_host_key(server: Server, identity: Identity, known_hosts: Path,
                   expect: str | None = None) -> str:
    """Blocking: fetch the server's current host key and append it to ``known_hosts``;
    returns its fingerprint. With ``expect``, a key of another fingerprint is refused."""
    key = fetch_host_key(server, identity)
    if expect is not None and not same_fingerprint(fingerprint(key), expect):
        raise HostKeyError(f"{server.name} presents {fingerprint(key)}, not the expected "
                           f"{expect}; nothing was recorded")
    try:
        known_hosts.parent.mkdir(parents=True, exist_ok=True)
        with known_hosts.open("a", encoding="utf-8") as fh:
            fh.write(f"{_host_key_name(identity)} {key.get_name()} {key.get_base64()}\n")
    except OSError as err:
        raise ExecutionError(f"cannot write {known_hosts}: {err.strerror or err}") from err
    return fingerprint(key)
