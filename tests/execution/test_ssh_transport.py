"""OrderedTransport against a real sshd: a message of a channel the server has closed
is dropped, never sent (OpenSSH would drop the whole connection, or, once it reused the
channel's id, the bytes would land in another run's channel)."""

from __future__ import annotations

import socket
import time

import paramiko
import pytest
from paramiko.common import cMSG_CHANNEL_DATA, cMSG_CHANNEL_EOF

from mer.execution.ssh_transport import OrderedTransport


def _stale(kind: bytes, chan: paramiko.Channel, data: bytes = b"") -> paramiko.Message:
    m = paramiko.Message()
    m.add_byte(kind)
    m.add_int(chan.remote_chanid)
    if kind == cMSG_CHANNEL_DATA:
        m.add_string(data)
    return m


@pytest.mark.ssh
def test_a_late_message_of_a_closed_channel_is_dropped(sshd_server) -> None:
    s = sshd_server.server
    t = OrderedTransport(socket.create_connection((s.host, s.port)))
    try:
        t.start_client(timeout=10)
        t.auth_publickey(s.user, paramiko.PKey.from_path(s.identity_file))
        first = t.open_session()
        first.exec_command("exit 0")
        assert first.recv_exit_status() == 0
        for _ in range(500):  # until the transport thread handled the server's CLOSE
            if getattr(first, "mer_closed_by_server", False):
                break
            time.sleep(0.01)
        assert first.mer_closed_by_server
        # The server frees a closed channel's id a little later and gives it to a new
        # channel: open channels until one has it.
        opened = [t.open_session()]
        while opened[-1].remote_chanid != first.remote_chanid and len(opened) < 20:
            opened.append(t.open_session())
        second = opened[-1]
        assert second.remote_chanid == first.remote_chanid
        # Messages of the closed channel, sent late (as paramiko sends one it built
        # before the server's CLOSE came in): they must not reach the new channel.
        first.transport._send_user_message(_stale(cMSG_CHANNEL_DATA, first, b"late "))
        first.transport._send_user_message(_stale(cMSG_CHANNEL_EOF, first))
        second.settimeout(10)  # a broken channel fails the test instead of hanging it
        second.exec_command("cat")
        second.sendall(b"ok")
        second.shutdown_write()
        out = b""
        while chunk := second.recv(1024):
            out += chunk
        assert out == b"ok"  # nothing of the closed channel reached the new one
        assert second.recv_exit_status() == 0
    finally:
        t.close()
