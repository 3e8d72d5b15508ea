"""The SSH executor (paramiko): models run on remote servers over one pooled connection
per server, a channel per run.

Speed: paramiko's own socket leaves Nagle's algorithm on, which stalls every exchange by
~40 ms; we open the TCP socket ourselves with TCP_NODELAY (BASELINES.md: 44 ms -> 2 ms
per exec). Calls that wait on the server (connect, open a channel, start a command,
a large write) run on a dedicated thread pool; reading output does not wait at all:
the event loop watches each channel's readiness pipe and takes what paramiko buffered.

Safety: host keys are checked against a known_hosts file (``[host]:port`` entries for
other ports than 22); an unknown or changed key is refused with its fingerprint until
``trust`` records it. Keys come from the server's identity file, the SSH agent or the
default key files; no password is ever used or stored.

Killing: closing a channel does not kill the remote process, so every command is started
as ``echo $$; exec ARGV`` in the session's shell, a process-group leader: the first stdout
line is the group id, and a timeout or cancel sends TERM, then KILL, to that group over a
second channel; ``kill_group`` does the same for a group some earlier mer started. The
command lines themselves are built in remote_sh.py.

Pooling: a connection is shared only by servers with the same whole identity (host,
port, user, key file, known_hosts file), so no server runs on another's key or host-key
check; a server whose fields changed drops the connection opened for its old ones.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import hashlib
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko

from mer.domain import RunRequest, Server, ServerCheck
from mer.errors import ConnectError, ExecutionError, HostKeyError
from mer.execution.base import CHUNK, ConnectionLost, ProcessExecutor
from mer.execution.remote_sh import build_kill_group, build_remote_command

__all__ = ["SshExecutor", "build_kill_group", "build_remote_command", "fingerprint"]

CONNECT_TIMEOUT = 10.0
KEEPALIVE = 10
_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=64, thread_name_prefix="mer-ssh")
# A write up to this size that fits the channel's window is sent from the loop itself.
SMALL_WRITE = 32768


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH-style SHA256 fingerprint of a host key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return f"{key.get_name()} SHA256:{base64.b64encode(digest).decode().rstrip('=')}"


def _host_key_name(server: Server) -> str:
    port = server.port or 22
    return server.host if port == 22 else f"[{server.host}]:{port}"  # type: ignore[return-value]


async def _blocking(fn: Any, *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(_POOL, fn, *args)


@dataclass(frozen=True, slots=True)
class _Identity:
    """Everything that decides who connects to what: a pooled connection serves only
    servers whose identity equals the one it was opened for."""

    host: str
    port: int
    user: str
    identity_file: str | None  # resolved path; None: agent and default keys
    known_hosts: str  # the resolved file actually checked


class _Connection:
    """One authenticated paramiko Transport for one connection identity, shared by the
    runs of every server with that identity."""

    def __init__(self, server: Server, identity: _Identity) -> None:
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
        name = _host_key_name(s)
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


class _Wakeup:
    """Stands in for the event paramiko sets when a channel buffer gets data or closes
    (``BufferedPipe.set_event``): it schedules one drain on the event loop.

    NOTE: not ``Channel.fileno()``: its pipe ORs the stdout and stderr buffers without a
    common lock, so a feed on one racing a drain of the other loses the wake-up (seen
    here: a run with heavy output on both streams stalled until its timeout)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, drain: Any) -> None:
        self._loop = loop
        self._drain = drain
        self._pending = False
        self.armed = True

    def set(self) -> None:  # any thread (paramiko's), holding that buffer's lock
        if self.armed and not self._pending:
            self._pending = True
            with contextlib.suppress(RuntimeError):  # the loop may be closed at exit
                self._loop.call_soon_threadsafe(self._run)

    def clear(self) -> None:
        pass

    def _run(self) -> None:
        # Cleared before draining: a feed from now on schedules another drain.
        self._pending = False
        if self.armed:
            self._drain()


class SshProcess:
    """A remote process on one channel, read on the event loop itself.

    paramiko's transport thread buffers a channel's incoming data; a ``_Wakeup`` tells
    the loop, which moves whatever is buffered into asyncio StreamReaders without
    blocking. No thread waits on the channel, and a cancelled read (a worker request's
    timeout) never loses bytes. The first stdout line is the remote process group id
    (see ``build_remote_command``); it is taken off the stream here.
    """

    def __init__(self, conn: _Connection, chan: paramiko.Channel, loop: asyncio.AbstractEventLoop) -> None:
        self._conn = conn
        self._chan = chan
        self.pid: int | None = None
        self._pid_line = bytearray()
        self._pid_seen = loop.create_future()
        self._out = asyncio.StreamReader(limit=1 << 30, loop=loop)
        self._err = asyncio.StreamReader(limit=1 << 30, loop=loop)
        self._wakeup = _Wakeup(loop, self._on_ready)
        # set_event fires at once when data is already buffered or the channel closed.
        chan.in_buffer.set_event(self._wakeup)
        chan.in_stderr_buffer.set_event(self._wakeup)

    def _on_ready(self) -> None:
        chan = self._chan
        try:
            ended = chan.eof_received or chan.closed  # read first: data may precede the end
            while chan.recv_ready():
                self._stdout(chan.recv(CHUNK))
            while chan.recv_stderr_ready():
                self._err.feed_data(chan.recv_stderr(CHUNK))
        except Exception:  # noqa: BLE001 - a broken channel is an end of stream
            ended = True
        if ended:
            self._end_of_streams()

    def _stdout(self, data: bytes) -> None:
        if self._pid_seen.done():
            self._out.feed_data(data)
            return
        self._pid_line += data
        if b"\n" in self._pid_line:
            self._take_pid()

    def _take_pid(self) -> None:
        raw = bytes(self._pid_line)
        self._pid_line.clear()
        line, nl, rest = raw.partition(b"\n")
        try:
            self.pid = int(line) if nl else None
        except ValueError:
            self.pid = None
        if self.pid is None:  # not our wrapper's line: it is the model's output
            rest = raw
        self._pid_seen.set_result(None)
        if rest:
            self._out.feed_data(rest)

    async def group_id(self) -> int | None:
        """The remote process group id, once the wrapper printed it."""
        await asyncio.shield(self._pid_seen)
        return self.pid

    def _end_of_streams(self) -> None:
        self._wakeup.armed = False
        if not self._pid_seen.done():
            self._take_pid()
        self._out.feed_eof()
        self._err.feed_eof()

    def _close_channel(self) -> None:
        self._wakeup.armed = False
        self._chan.close()

    def _lost(self) -> bool:
        return not self._conn.active()

    async def write(self, data: bytes) -> None:
        chan = self._chan
        try:
            # Small writes that fit the channel's send window never block: send them
            # from the loop (saves two thread hops per run); the rest waits on a thread.
            if len(data) <= SMALL_WRITE and chan.send_ready():
                while data and chan.send_ready() and not chan.closed:
                    sent = chan.send(data)
                    if sent == 0:
                        raise BrokenPipeError("the remote process closed its input")
                    data = data[sent:]
            if data:
                await _blocking(chan.sendall, data)
        except (OSError, paramiko.SSHException, EOFError) as err:
            if self._lost():
                raise ConnectionLost("the connection dropped") from err
            raise BrokenPipeError(str(err)) from err

    async def close_stdin(self) -> None:
        # Sends one small EOF message; sending never waits on the window.
        self._chan.shutdown_write()

    async def read_stdout(self) -> bytes:
        return await self._read(self._out)

    async def read_stderr(self) -> bytes:
        return await self._read(self._err)

    async def _read(self, reader: asyncio.StreamReader) -> bytes:
        data = await reader.read(CHUNK)
        if not data and self._lost():
            raise ConnectionLost("the connection dropped")
        return data

    async def wait(self) -> int | None:
        chan = self._chan
        # The exit status usually arrives with the end of the output: no thread hop then.
        code = chan.recv_exit_status() if chan.exit_status_ready() else await _blocking(chan.recv_exit_status)
        self._close_channel()
        if code == -1:
            # No exit status: the connection died, or a signal killed the process.
            if self._lost():
                raise ConnectionLost("the connection dropped before the exit status arrived")
            return None
        return int(code)

    def alive(self) -> bool:
        return not self._chan.exit_status_ready() and not self._chan.closed and not self._lost()

    async def kill(self, grace: float) -> None:
        if not self._pid_seen.done() and not self._lost():
            # Cancelled right after the start: the group id is on its way.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._pid_seen), grace)
        if self.pid is not None and not self._lost():
            await _blocking(self._kill_group, grace)
        self._close_channel()

    def _kill_group(self, grace: float) -> None:
        def signal(sig: str) -> None:
            with contextlib.suppress(Exception):
                chan = self._conn.open_channel()
                # NOTE: no "--": dash, a common /bin/sh, rejects it in `kill`.
                chan.exec_command(f"kill -{sig} -{self.pid} 2>/dev/null")
                chan.recv_exit_status()
                chan.close()

        signal("TERM")
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and not self._chan.exit_status_ready():
            time.sleep(0.02)
        signal("KILL")


class SshExecutor(ProcessExecutor):
    kind = "ssh"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._connections: dict[_Identity, _Connection] = {}
        # server name -> the identity its runs last used: a changed server drops its
        # old connection.
        self._opened_for: dict[str, _Identity] = {}
        self._lock = threading.Lock()

    def _known_hosts(self, server: Server) -> Path:
        path = server.known_hosts or self.known_hosts or "~/.ssh/known_hosts"
        return Path(path).expanduser()

    def _identity(self, server: Server) -> _Identity:
        if not server.host:
            raise ConnectError(f"server '{server.name}' has no host; set one with `server add`")
        key = server.identity_file and str(Path(server.identity_file).expanduser().resolve())
        return _Identity(
            host=server.host, port=server.port or 22,
            user=server.user or os.environ.get("USER") or "root",
            identity_file=key or None,
            known_hosts=str(self._known_hosts(server).resolve()),
        )

    def _connection_blocking(self, server: Server) -> _Connection:
        identity = self._identity(server)
        with self._lock:  # NOTE: one connect per identity even when runs start together
            previous = self._opened_for.get(server.name)
            if previous is not None and previous != identity:
                self._drop(server.name, previous)
            conn = self._connections.get(identity)
            if conn is not None and conn.active():
                self._opened_for[server.name] = identity
                return conn
            if conn is not None:
                conn.close()
                del self._connections[identity]
            conn = _Connection(server, identity)
            conn.connect()
            self._connections[identity] = conn
            self._opened_for[server.name] = identity
            return conn

    def _drop(self, name: str, identity: _Identity) -> None:
        """The server ``name`` changed: close the connection opened for its old fields
        unless another server still has them. Its runs on it end as lost."""
        del self._opened_for[name]
        if identity not in self._opened_for.values():
            conn = self._connections.pop(identity, None)
            if conn is not None:
                conn.close()

    def _start(self, server: Server, remote: str) -> tuple[_Connection, paramiko.Channel]:
        conn = self._connection_blocking(server)
        chan = conn.open_channel()
        try:
            chan.exec_command(remote)
        except (paramiko.SSHException, OSError, EOFError) as err:
            chan.close()
            raise ConnectionLost(str(err)) from err
        return conn, chan

    async def _spawn(self, request: RunRequest, server: Server, command: list[str]) -> SshProcess:
        remote = build_remote_command(request, command)
        try:
            conn, chan = await _blocking(self._start, server, remote)
        except ConnectionLost as err:
            raise ConnectError(f"lost the connection to {server.name}: {err}") from err
        # NOTE: the request can go out at once; the group id line is read as it comes
        # (``group_id`` hands it to whoever records it).
        return SshProcess(conn, chan, asyncio.get_running_loop())

    async def kill_group(self, server: Server, pgid: int | None, mark: str | None = None) -> bool:
        if pgid is None or pgid <= 1:
            return False  # a remote group is found only by its recorded id
        script = build_kill_group(pgid, mark, self.grace)

        def kill() -> int:
            chan = self._connection_blocking(server).open_channel()
            try:
                chan.exec_command(script)
                return chan.recv_exit_status()
            except (paramiko.SSHException, OSError, EOFError) as err:
                raise ConnectionLost(str(err)) from err
            finally:
                chan.close()

        try:
            code = await _blocking(kill)
        except ConnectionLost as err:
            raise ConnectError(f"lost the connection to {server.name}: {err}") from err
        if code not in (0, 3):
            raise ExecutionError(f"killing process group {pgid} on {server.name} failed "
                                 f"(exit status {code})")
        return code == 0

    async def check(self, server: Server) -> ServerCheck:
        t0 = time.perf_counter()
        try:
            conn = await _blocking(self._connection_blocking, server)
        except HostKeyError as err:
            return ServerCheck(server=server.name, reachable=True, host_key_known=False,
                               message=str(err))
        except ConnectError as err:
            return ServerCheck(server=server.name, reachable=False, message=str(err))

        def ping() -> None:
            chan = conn.open_channel()
            chan.exec_command("true")
            chan.recv_exit_status()
            chan.close()

        t1 = time.perf_counter()
        try:
            await _blocking(ping)
        except ConnectionLost as err:
            return ServerCheck(server=server.name, reachable=False, message=str(err))
        now = time.perf_counter()
        key = conn.host_key
        return ServerCheck(server=server.name, reachable=True, latency_ms=(now - t1) * 1000,
                           host_key_known=True, fingerprint=fingerprint(key) if key else None,
                           message=f"connected in {(t1 - t0) * 1000:.1f} ms")

    async def trust(self, server: Server) -> str:
        def fetch() -> str:
            conn = _Connection(server, self._identity(server))
            transport = conn._open_transport()
            transport.close()
            key = conn.host_key
            assert key is not None
            path = self._known_hosts(server)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("a", encoding="utf-8") as fh:
                    fh.write(f"{_host_key_name(server)} {key.get_name()} {key.get_base64()}\n")
            except OSError as err:
                raise ExecutionError(f"cannot write {path}: {err.strerror or err}") from err
            return fingerprint(key)

        return await _blocking(fetch)

    async def close(self) -> None:
        await super().close()
        for conn in list(self._connections.values()):
            conn.close()
        self._connections.clear()
        self._opened_for.clear()
