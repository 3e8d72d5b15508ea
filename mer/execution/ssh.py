"""The SSH executor (paramiko): models run on remote servers over one pooled connection
per server, a channel per run.

The modules under it: ssh_connection.py opens and authenticates connections and checks
host keys; ssh_start.py starts a run on an open connection from the event loop;
ssh_process.py runs one remote process on a channel; remote_sh.py builds the remote
command lines. This module decides which connection a server's runs share, and
kills a process group some earlier mer started (``kill_group``).

Pooling: a connection is shared only by servers with the same whole identity (host,
port, user, key file, known_hosts file, jump hosts), so no server runs on another's key,
host-key check or route; a server whose fields changed drops the connection opened for
its old ones. Hosts are resolved through the OpenSSH client config (ssh_config.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import paramiko

from mer.domain import RunRequest, Server, ServerCheck
from mer.errors import ConnectError, ExecutionError, HostKeyError, MerError
from mer.execution import ssh_start
from mer.execution.base import ProcessExecutor
from mer.execution.process import ConnectionLost
from mer.execution.remote_sh import build_kill_group, build_remote_command
from mer.execution.ssh_config import SshConfigFile, resolve_identity
from mer.execution.ssh_connection import (
    CONNECT_TIMEOUT,
    Connection,
    Identity,
    SessionRefused,
    fingerprint,
    presented_key,
    trust_host_key,
)
from mer.execution.ssh_process import SMALL_WRITE, SshProcess
from mer.execution.ssh_threads import run_blocking, run_blocking_then

__all__ = ["SshExecutor", "build_kill_group", "build_remote_command", "fingerprint"]


def _refill(started: tuple[Connection, paramiko.Channel]) -> None:
    started[0].channels.refill(here=True)


def _nothing(started: tuple[Connection, paramiko.Channel]) -> None:
    pass


def _close(started: tuple[Connection, paramiko.Channel]) -> None:
    started[1].close()  # a run cancelled while its command started


def _refill_from_loop(conn: Connection) -> None:
    """Open the connection's next spare channel from the loop (no thread waits)."""
    opening = conn.channels.begin()
    if opening is None:
        return
    transport = conn.transport
    if transport is None:  # closed meanwhile
        conn.channels.offer(None, opening)
        return
    task = asyncio.ensure_future(ssh_start.open_session(transport, CONNECT_TIMEOUT))

    def opened(done: asyncio.Task[paramiko.Channel]) -> None:
        failed = done.cancelled() or done.exception() is not None
        conn.channels.offer(None if failed else done.result(), opening)

    task.add_done_callback(opened)


class SshExecutor(ProcessExecutor):
    kind = "ssh"

    def __init__(self, *, ssh_config: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ssh_config = SshConfigFile(ssh_config)  # None: hosts are taken as given
        self._connections: dict[Identity, Connection] = {}
        # server name -> the identity its runs last used: a changed server drops its
        # old connection.
        self._opened_for: dict[str, Identity] = {}
        self._lock = threading.Lock()
        self._identities: dict[tuple[Any, ...], Identity] = {}

    def _known_hosts(self, server: Server) -> Path:
        path = server.known_hosts or self.known_hosts or "~/.ssh/known_hosts"
        return Path(path).expanduser()

    def _identity(self, server: Server) -> Identity:
        if not server.host:
            raise ConnectError(f"server '{server.name}' has no host; set one with `server add`")
        # Resolved once per server's fields and version of the SSH config: resolving the
        # files' paths and the options took ~50 µs of every run.
        key = (server.host, server.port, server.user, server.identity_file, server.known_hosts,
               self.ssh_config.version())
        identity = self._identities.get(key)
        if identity is None:
            identity = self._identities[key] = resolve_identity(
                self.ssh_config, server.host, port=server.port, user=server.user,
                identity_file=server.identity_file,
                known_hosts=str(self._known_hosts(server).resolve()),
            )
        return identity

    def _connection_blocking(self, server: Server) -> Connection:
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
            conn = Connection(server, identity)
            conn.connect()
            self._connections[identity] = conn
            self._opened_for[server.name] = identity
            return conn

    def _drop(self, name: str, identity: Identity) -> None:
        """The server ``name`` changed: close the connection opened for its old fields
        unless another server still has them. Its runs on it end as lost."""
        del self._opened_for[name]
        if identity not in self._opened_for.values():
            conn = self._connections.pop(identity, None)
            if conn is not None:
                conn.close()

    def _channel(self, server: Server) -> tuple[Connection, paramiko.Channel]:
        """Blocking: a session channel to ``server`` (on its pooled connection, or on the
        next one when the server refuses that one another session)."""
        return self._connection_blocking(server).session()

    def _start(self, server: Server, remote: str, request: bytes | None = None,
               ) -> tuple[Connection, paramiko.Channel]:
        conn, chan = self._channel(server)
        try:
            chan.exec_command(remote)
        except (paramiko.SSHException, OSError, EOFError) as err:
            chan.close()
            raise ConnectionLost(str(err)) from err
        if request is not None:
            # sshd opens a session's window only once the command started, just after
            # its reply to exec: sent from here, the request waits for it on this
            # thread, not with a second hop from the loop.
            with contextlib.suppress(paramiko.SSHException, OSError, EOFError):
                chan.sendall(request)  # a model that exits unread: its business
                chan.shutdown_write()
        return conn, chan

    async def _spawn(self, request: RunRequest, server: Server, command: list[str]) -> SshProcess:
        return await self._open(request, server, command, None)

    async def _start_oneshot(self, request: RunRequest, server: Server, data: bytes) -> SshProcess:
        """A oneshot run; a small request goes out with the command. On a connection
        that is open, all of it happens on the loop (ssh_start.py); else on a pool
        thread (``_start``), which also connects and walks to the next connection when
        the server refuses a session."""
        small = len(data) <= SMALL_WRITE
        conn = self._pooled(server) if small else None
        if conn is not None:
            proc = await self._start_here(conn, server, request, data)
            if proc is not None:
                return proc
        return await self._open(request, server, request.command, data if small else None)

    def _pooled(self, server: Server) -> Connection | None:
        """The server's connection when it is open and was opened for the server's
        fields as they are; None without waiting (another thread may be connecting)."""
        try:
            identity = self._identity(server)
        except MerError:
            return None  # said by the pool path
        if not self._lock.acquire(blocking=False):
            return None
        try:
            conn = self._connections.get(identity)
            if self._opened_for.get(server.name) != identity:
                return None
        finally:
            self._lock.release()
        return conn if conn is not None and conn.active() else None

    async def _start_here(self, conn: Connection, server: Server, request: RunRequest,
                          data: bytes) -> SshProcess | None:
        """Start the run on ``conn`` from the loop; None when the server refused a
        session on it."""
        remote = build_remote_command(request, request.command)
        chan = conn.channels.take_ready()
        transport = conn.transport
        try:
            if chan is None:
                if transport is None:
                    return None
                chan = await ssh_start.open_session(transport, CONNECT_TIMEOUT)
            await ssh_start.exec_command(chan, remote)
        except SessionRefused:
            return None
        except ConnectionLost as err:
            raise ConnectError(f"lost the connection to {server.name}: {err}") from err
        proc = SshProcess(conn, chan, asyncio.get_running_loop(), input_sent=True)
        try:
            await ssh_start.send_request(chan, data)
        except BaseException:
            chan.close()  # cancelled while the server's window was awaited
            raise
        _refill_from_loop(conn)  # the request is out: open the next run's channel
        return proc

    async def _open(self, request: RunRequest, server: Server, command: list[str],
                    data: bytes | None) -> SshProcess:
        remote = build_remote_command(request, command)
        try:
            conn, chan = await run_blocking_then(
                partial(self._start, server, remote, data),
                # The request is out (else the process's close_stdin refills): this
                # thread opens the next run's channel.
                _refill if data is not None else _nothing, _close)
        except ConnectionLost as err:
            raise ConnectError(f"lost the connection to {server.name}: {err}") from err
        # NOTE: the request can go out at once; the group id line is read as it comes
        # (``group_id`` hands it to whoever records it).
        return SshProcess(conn, chan, asyncio.get_running_loop(), input_sent=data is not None)

    async def kill_group(self, server: Server, pgid: int | None, mark: str | None = None) -> bool:
        if pgid is None or pgid <= 1:
            return False  # a remote group is found only by its recorded id
        script = build_kill_group(pgid, mark, self.grace)

        def kill() -> int:
            _, chan = self._channel(server)
            try:
                chan.exec_command(script)
                return chan.recv_exit_status()
            except (paramiko.SSHException, OSError, EOFError) as err:
                raise ConnectionLost(str(err)) from err
            finally:
                chan.close()

        try:
            code = await run_blocking(kill)
        except ConnectionLost as err:
            raise ConnectError(f"lost the connection to {server.name}: {err}") from err
        if code not in (0, 3):
            raise ExecutionError(f"killing process group {pgid} on {server.name} failed "
                                 f"(exit status {code})")
        return code == 0

    async def check(self, server: Server) -> ServerCheck:
        t0 = time.perf_counter()
        try:
            conn = await run_blocking(self._connection_blocking, server)
        except HostKeyError as err:
            return ServerCheck(server=server.name, reachable=True, host_key_known=False,
                               message=str(err))
        except ConnectError as err:
            return ServerCheck(server=server.name, reachable=False, message=str(err))

        def ping() -> None:
            _, chan = self._channel(server)
            chan.exec_command("true")
            chan.recv_exit_status()
            chan.close()

        t1 = time.perf_counter()
        try:
            await run_blocking(ping)
        except ConnectionLost as err:
            return ServerCheck(server=server.name, reachable=False, message=str(err))
        now = time.perf_counter()
        key = conn.host_key
        return ServerCheck(server=server.name, reachable=True, latency_ms=(now - t1) * 1000,
                           host_key_known=True, fingerprint=fingerprint(key) if key else None,
                           message=f"connected in {(t1 - t0) * 1000:.1f} ms")

    async def host_key(self, server: Server) -> str:
        def fetch() -> str:  # resolving the identity touches the disk too: off the loop
            return presented_key(server, self._identity(server))

        return await run_blocking(fetch)

    async def trust(self, server: Server, expect: str | None = None) -> str:
        def fetch() -> str:
            return trust_host_key(server, self._identity(server), expect)

        return await run_blocking(fetch)

    async def close(self) -> None:
        await super().close()
        for conn in list(self._connections.values()):
            conn.close()
        self._connections.clear()
        self._opened_for.clear()
