"""A TCP proxy on loopback in front of the real PostgreSQL, so that a test can make the
database blink for one mer without touching anyone else's connections: ``cut()`` drops
every connection through it (as a restart or failover does), ``block()`` refuses new
ones until ``unblock()`` (the database down)."""

from __future__ import annotations

import selectors
import socket
import threading


class Proxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._listener, selectors.EVENT_READ)
        self._peers: dict[socket.socket, socket.socket] = {}
        self._lock = threading.Lock()
        self.blocked = False
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def url(self, database: str, user: str = "postgres") -> str:
        return f"postgresql+asyncpg://{user}@127.0.0.1:{self.port}/{database}"

    def _serve(self) -> None:
        while not self._stop:
            for key, _ in self._sel.select(timeout=0.05):
                sock = key.fileobj
                if sock is self._listener:
                    self._accept()
                else:
                    self._forward(sock)  # type: ignore[arg-type]

    def _accept(self) -> None:
        client, _ = self._listener.accept()
        if self.blocked:
            client.close()
            return
        try:
            server = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        with self._lock:
            self._peers[client], self._peers[server] = server, client
            self._sel.register(client, selectors.EVENT_READ)
            self._sel.register(server, selectors.EVENT_READ)

    def _forward(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(65536)
        except OSError:
            data = b""
        peer = self._peers.get(sock)
        if not data or peer is None:
            self._close_pair(sock)
            return
        try:
            peer.sendall(data)
        except OSError:
            self._close_pair(sock)

    def _close_pair(self, sock: socket.socket) -> None:
        with self._lock:
            peer = self._peers.pop(sock, None)
            for s in (sock, peer):
                if s is None:
                    continue
                self._peers.pop(s, None)
                try:
                    self._sel.unregister(s)
                except (KeyError, ValueError):
                    pass
                s.close()

    def cut(self) -> None:
        """Drop every connection through the proxy."""
        with self._lock:
            socks = list(self._peers)
        for s in socks:
            if s.fileno() != -1:
                self._close_pair(s)

    def block(self) -> None:
        self.blocked = True
        self.cut()

    def unblock(self) -> None:
        self.blocked = False

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=2)
        self.cut()
        self._listener.close()
