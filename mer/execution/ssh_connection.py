"""SSH connections (paramiko): opening, host-key checking and authentication. The
executor (ssh.py) pools them; the remote processes (ssh_process.py) run on their
channels; the blocking paramiko calls run on ssh_threads.py's pool.

Speed: paramiko's own socket leaves Nagle's algorithm on, which stalls every exchange by
~40 ms; we open the TCP socket ourselves with TCP_NODELAY (BASELINES.md: 44 ms -> 2 ms
per exec). Calls that wait on the server (connect, open a channel, start a command,
a large write) run on a dedicated thread pool, never on the event loop.

Safety: host keys are checked against a known_hosts file (``[host]:port`` entries for
other ports than 22), under the name the host was resolved to; an unknown or changed key
is refused with its fingerprint until ``trust`` records it. Keys come from the server's
identity file, the SSH agent or the default key files; no password is ever used or stored.

ProxyJump: a connection through jump hosts first opens the jump host's own authenticated
connection (its host key checked too), then runs the target's SSH session in a
``direct-tcpip`` channel of it; the two live and close together.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from mer.domain import Server
from mer.errors import ConnectError, ExecutionError, HostKeyError
from mer.execution.process import ConnectionLost
from mer.execution.ssh_channels import SpareChannels
from mer.execution.ssh_threads import POOL
from mer.execution.ssh_transport import OrderedTransport

__all__ = ["Connection", "Identity", "SessionRefused", "fingerprint", "presented_key",
           "trust_host_key"]

CONNECT_TIMEOUT = 10.0
KEEPALIVE = 10
MAX_CONNECTIONS = 16  # to one identity, when the server refuses one more sessions


class SessionRefused(ConnectionLost):
    """A live connection was refused another session channel: sshd's MaxSessions
    (10 by default) counts the sessions open on one connection."""


class _QuietRefusals(logging.Filter):
    """paramiko logs each refused channel as an error; mer handles a refused session
    (another connection takes it) and says so itself when it cannot."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith("Secsh channel")
                    and "open FAILED" in record.msg)


logging.getLogger("paramiko.transport").addFilter(_QuietRefusals())



def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH-style SHA256 fingerprint of a host key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return f"{key.get_name()} SHA256:{base64.b64encode(digest).decode().rstrip('=')}"


def _host_key_name(identity: Identity) -> str:
    """The name known_hosts files use for the host, as OpenSSH writes it."""
    return identity.host if identity.port == 22 else f"[{identity.host}]:{identity.port}"


def prefer_aead(transport: paramiko.Transport) -> None:
    """Ask for AES-GCM first (the others stay, for servers without it): with a MAC,
    paramiko checks each packet's tag byte by byte in Python (``constant_time_bytes_eq``),
    which was the largest part of its work per run; GCM's tag is checked by OpenSSL."""
    options = transport.get_security_options()
    aead = tuple(c for c in options.ciphers if c.endswith("-gcm@openssh.com"))
    options.ciphers = aead + tuple(c for c in options.ciphers if c not in aead)


@dataclass(frozen=True, slots=True)
class Identity:
    """Everything that decides who connects to what: a pooled connection serves only
    servers whose identity equals the one it was opened for."""

    host: str  # resolved: the ssh config's HostName, not the alias
    port: int
    user: str
    identity_file: str | None  # resolved path; None: agent and default keys
    known_hosts: str  # the resolved file actually checked
    jump: Identity | None = None  # the ProxyJump host this one is reached through
    alias: str = field(default="", compare=False)  # the name it was asked for, for messages

    def route(self) -> list[Identity]:
        """The hosts connected to, in order: the first jump host ... this one."""
        return [*(self.jump.route() if self.jump else []), self]


class Connection:
    """One authenticated paramiko Transport for one connection identity, shared by the
    runs of every server with that identity; through a ProxyJump, it owns the jump host's
    connection too."""

    def __init__(self, server: Server, identity: Identity, target: bool = True) -> None:
        self.server = server
        self.identity = identity
        self.known_hosts = Path(identity.known_hosts)
        self.transport: paramiko.Transport | None = None
        self.host_key: paramiko.PKey | None = None
        self.jump: Connection | None = None
        self.channels = SpareChannels(self._open_session, self.active, POOL)
        # The next connection to this identity, for the sessions this one has no room for.
        self.more: Connection | None = None
        self._more_lock = threading.Lock()
        # How messages name this host: the server, or a jump host on the way to it.
        self.what = server.name if target else f"jump host {identity.alias} of {server.name}"

    def active(self) -> bool:
        return (self.transport is not None and self.transport.is_active()
                and (self.jump is None or self.jump.active()))

    def _socket(self) -> socket.socket | paramiko.Channel:
        ident = self.identity
        if ident.jump is not None:
            self.jump = Connection(self.server, ident.jump, target=False)
            self.jump.connect()
            assert self.jump.transport is not None
            try:
                return self.jump.transport.open_channel(
                    "direct-tcpip", (ident.host, ident.port), ("127.0.0.1", 0),
                    timeout=CONNECT_TIMEOUT)
            except (paramiko.SSHException, OSError, EOFError) as err:
                raise ConnectError(
                    f"{self.jump.what} cannot reach {ident.host}:{ident.port}: {err or 'refused'}"
                ) from err
        try:
            sock = socket.create_connection((ident.host, ident.port), timeout=CONNECT_TIMEOUT)
        except OSError as err:
            raise ConnectError(
                f"cannot connect to {self.what} ({ident.host}:{ident.port}): {err.strerror or err}"
            ) from err
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Liveness deadline: a server that vanishes without closing the connection (power
        # loss, a cut network) is declared dead after ~KEEPALIVE + 3 * 5 s instead of the
        # kernel's default two hours, and its runs end as `lost`.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in (("TCP_KEEPIDLE", KEEPALIVE), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3)):
            if hasattr(socket, name):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
        return sock

    def open(self) -> paramiko.PKey:
        """Blocking: connect (through the jump hosts) and take the host key; nothing is
        checked yet. Returns the key."""
        try:
            transport = self.transport = OrderedTransport(self._socket())
            prefer_aead(transport)
            transport.start_client(timeout=CONNECT_TIMEOUT)
        except (paramiko.SSHException, OSError, EOFError) as err:
            self.close()
            raise ConnectError(f"SSH handshake with {self.what} failed: {err}") from err
        except BaseException:
            self.close()
            raise
        self.host_key = transport.get_remote_server_key()
        return self.host_key

    def key_state(self, key: paramiko.PKey) -> str:
        """``known``, ``unknown`` or ``changed``, against this host's known_hosts entry."""
        try:
            known = paramiko.HostKeys(str(self.known_hosts)) if self.known_hosts.exists() else None
        except (OSError, paramiko.SSHException) as err:
            raise HostKeyError(f"cannot read known_hosts {self.known_hosts}: {err}") from err
        entry = known.lookup(_host_key_name(self.identity)) if known is not None else None
        if entry is None or key.get_name() not in entry:
            return "unknown"
        return "known" if entry[key.get_name()] == key else "changed"

    def check_host_key(self, key: paramiko.PKey) -> None:
        name, state = _host_key_name(self.identity), self.key_state(key)
        if state == "unknown":
            raise HostKeyError(
                f"host key of {self.what} ({name}) is not known: {fingerprint(key)}; "
                f"check it, then run `server trust {self.server.name}` to trust it"
            )
        if state == "changed":
            raise HostKeyError(
                f"host key of {self.what} ({name}) has CHANGED (now {fingerprint(key)}); someone "
                f"may be intercepting the connection. If the change is expected, remove the old "
                f"entry from {self.known_hosts} and run `server trust {self.server.name}`"
            )

    def _keys(self) -> list[paramiko.PKey]:
        if self.identity.identity_file:
            path = Path(self.identity.identity_file)
            try:
                return [paramiko.PKey.from_path(str(path))]
            except (OSError, paramiko.SSHException, ValueError) as err:
                raise ConnectError(f"cannot load the identity file {path} of {self.what}: "
                                   f"{err}") from err
        keys: list[paramiko.PKey] = list(paramiko.Agent().get_keys())
        for name in ("id_ed25519", "id_ecdsa", "id_rsa"):
            path = Path.home() / ".ssh" / name
            if path.exists():
                with contextlib.suppress(OSError, paramiko.SSHException, ValueError):
                    keys.append(paramiko.PKey.from_path(str(path)))
        return keys

    def connect(self) -> None:
        """Blocking: open, check the host key, authenticate."""
        key = self.open()
        transport = self.transport
        assert transport is not None
        try:
            self.check_host_key(key)
            user = self.identity.user
            keys = self._keys()
            if not keys:
                raise ConnectError(f"no SSH key for {self.what}: set the server's identity file "
                                   f"or load a key into ssh-agent")
            last: Exception | None = None
            for key in keys:
                try:
                    transport.auth_publickey(user, key)
                    break
                except paramiko.AuthenticationException as err:
                    last = err
                except (paramiko.SSHException, OSError, EOFError) as err:
                    raise ConnectError(f"SSH authentication with {self.what} failed: {err}") from err
            if not transport.is_authenticated():
                raise ConnectError(
                    f"{user}@{self.identity.host} ({self.what}) refused every key offered "
                    f"({last}); check the identity file and authorized_keys"
                )
            transport.set_keepalive(KEEPALIVE)
        except BaseException:
            self.close()
            raise

    def open_channel(self) -> paramiko.Channel:
        """A session channel (one opened ahead when there is one: ssh_channels.py)."""
        return self.channels.take()

    def session(self) -> tuple[Connection, paramiko.Channel]:
        """Blocking: a session channel on this connection or, when the server refuses it
        another session (sshd's MaxSessions, 10 by default: a server's max-runs, or
        several names of one host, can ask for more), on the next connection to the same
        identity. Returns the connection it is on, too."""
        conn, depth = self, 1
        while True:
            try:
                return conn, conn.open_channel()
            except SessionRefused:
                conn = conn._overflow(depth)
                depth += 1

    def _open_session(self) -> paramiko.Channel:
        transport = self.transport
        if transport is None:
            raise ConnectionLost("the connection is closed")
        try:
            return transport.open_session(timeout=CONNECT_TIMEOUT)
        except (paramiko.SSHException, OSError, EOFError) as err:
            # NOTE: paramiko keeps one refusal per transport, not per channel: of two
            # threads refused at once, one gets the ChannelException and the other
            # "Unable to open channel." Either way the connection itself lives on.
            if (isinstance(err, paramiko.SSHException) and transport.is_active()
                    and not str(err).startswith("Timeout")):
                raise SessionRefused(f"{self.what} refused another session: {err}") from err
            raise ConnectionLost(str(err) or "channel refused") from err

    def _overflow(self, depth: int) -> Connection:
        """Blocking: the next connection to this identity, for a session this one was
        refused; opened on first need (and again once it dropped)."""
        if depth >= MAX_CONNECTIONS:
            raise ConnectionLost(
                f"{self.what} refused a session on each of {MAX_CONNECTIONS} connections (sshd's "
                f"MaxSessions counts a connection's sessions); lower the server's max-runs")
        with self._more_lock:
            more = self.more
            if more is None or not more.active():
                if more is not None:
                    more.close()
                more = self.more = Connection(self.server, self.identity)
                more.connect()
            return more

    def close(self) -> None:
        if self.more is not None:
            self.more.close()
            self.more = None
        self.channels.close()
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        if self.jump is not None:
            self.jump.close()
            self.jump = None


def _hop_key(server: Server, identity: Identity, hop: Identity) -> tuple[Connection, paramiko.PKey]:
    """Blocking: the key ``hop`` of the route to ``server`` presents now (the hops before
    it must be known); the closed Connection says how to name it."""
    conn = Connection(server, hop, target=hop is identity)
    try:
        return conn, conn.open()
    finally:
        conn.close()


def _labelled(conn: Connection, key: paramiko.PKey) -> str:
    if conn.what == conn.server.name:
        return fingerprint(key)
    return f"{fingerprint(key)} ({conn.what}, {_host_key_name(conn.identity)})"


def presented_key(server: Server, identity: Identity) -> str:
    """Blocking: the fingerprint ``trust`` would record next (nothing is checked or
    recorded): the first jump host's whose key is not known, labelled, else the server's."""
    for hop in identity.route():
        conn, key = _hop_key(server, identity, hop)
        if hop is identity or conn.key_state(key) != "known":
            return _labelled(conn, key)
    raise AssertionError("a route ends with its server")


def same_fingerprint(actual: str, expected: str) -> bool:
    """``ssh-ed25519 SHA256:abc`` matches itself, ``SHA256:abc`` (as ssh-keygen -l prints
    it, without the key type) and what ``presented_key`` labels for a jump host."""
    expected = expected.strip().split(" (", 1)[0]
    return actual == expected or actual.split(" ", 1)[-1] == expected


def trust_host_key(server: Server, identity: Identity, expect: str | None = None) -> str:
    """Blocking: record the host keys on the route to the server that known_hosts does
    not hold yet (the jump hosts', then the server's, each reached through the hosts before
    it); returns what was recorded. With ``expect`` (what ``presented_key`` showed) only
    the first such key is recorded, and only with that fingerprint. A changed key is
    refused: its old entry must be removed first."""
    recorded: list[str] = []
    for hop in identity.route():
        conn, key = _hop_key(server, identity, hop)
        state = conn.key_state(key)
        if state == "changed":
            conn.check_host_key(key)
        if state == "known" and hop is not identity:
            continue
        if expect is not None and not same_fingerprint(fingerprint(key), expect):
            raise HostKeyError(f"{conn.what} presents {fingerprint(key)}, not the expected "
                               f"{expect}; nothing was recorded")
        if state == "known":  # the server's own key, recorded before
            return "; ".join(recorded) or fingerprint(key)
        path = Path(identity.known_hosts)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as fh:
                fh.write(f"{_host_key_name(hop)} {key.get_name()} {key.get_base64()}\n")
        except OSError as err:
            raise ExecutionError(f"cannot write {path}: {err.strerror or err}") from err
        recorded.append(_labelled(conn, key))
        if expect is not None:
            break
    return "; ".join(recorded)
