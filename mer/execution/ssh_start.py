"""A run's session channel opened, its command started and its request sent from the
event loop, with no thread waiting.

paramiko's ``open_session`` and ``exec_command`` each send one message and then block a
thread until the transport thread has the server's reply; so every SSH run took a pool
thread through two round trips. In a batch's fan-out those threads cost more CPU than
the paramiko work itself, contending with the busy loop for the GIL. Here the message
goes out from the loop (one small send, as ssh_process.py's small writes do) and the
event paramiko sets on the reply resolves a future on the loop instead of waking a
thread. paramiko's own code is followed step by step (``Transport.open_channel``,
``Channel.exec_command``); only the waiting differs.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

import paramiko
from paramiko.channel import Channel
from paramiko.common import cMSG_CHANNEL_OPEN, cMSG_CHANNEL_REQUEST

from mer.execution.process import ConnectionLost
from mer.execution.ssh_connection import SessionRefused

__all__ = ["exec_command", "open_session", "send_request"]

# paramiko's internals used here (typed Any: its stubs describe only the public API).
_Internals = Any


class _Reply(threading.Event):
    """The event paramiko sets when the server answered (or the channel or connection
    closed): it also wakes the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._loop = loop
        self.future: asyncio.Future[None] = loop.create_future()

    def set(self) -> None:  # paramiko's transport thread
        super().set()
        with contextlib.suppress(RuntimeError):  # the loop may be closed at exit
            self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        if not self.future.done():
            self.future.set_result(None)


class _WindowOpened(threading.Condition):
    """A channel's send-window condition (paramiko notifies it when the server grants
    more window): it also wakes a writer on the loop."""

    def __init__(self, lock: Any, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(lock)
        self._loop = loop
        self.waiter: asyncio.Future[None] | None = None

    def notify_all(self) -> None:  # under the channel's lock, any thread
        super().notify_all()
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


async def open_session(transport: paramiko.Transport, timeout: float) -> paramiko.Channel:
    """A new session channel. Raises ConnectionLost; SessionRefused when the server
    refused it on a live connection (sshd's MaxSessions)."""
    t: _Internals = transport
    if not t.active:
        raise ConnectionLost("the connection is closed")
    reply = _Reply(asyncio.get_running_loop())
    with t.lock:
        window = t._sanitize_window_size(None)
        packet = t._sanitize_packet_size(None)
        chanid = t._next_channel()
        m = paramiko.Message()
        m.add_byte(cMSG_CHANNEL_OPEN)
        m.add_string("session")
        m.add_int(chanid)
        m.add_int(window)
        m.add_int(packet)
        chan = Channel(chanid)
        c: _Internals = chan
        t._channels.put(chanid, chan)
        t.channel_events[chanid] = reply
        t.channels_seen[chanid] = True
        c._set_transport(t)
        c._set_window(window, packet)
    # NOTE: checked once the event is registered: a transport that dies from now on
    # sets it (it marks itself inactive before it sets the events it holds).
    if not t.active:
        raise ConnectionLost("the connection is closed")
    t._send_user_message(m)
    try:
        async with asyncio.timeout(timeout):
            await reply.future
    except BaseException as err:
        # Given up (a cancel, a timeout): the channel, should it open now, is closed.
        reply.future.add_done_callback(lambda _: chan.close())
        if isinstance(err, TimeoutError):
            raise ConnectionLost("the server did not open a session in time") from err
        raise
    opened = t._channels.get(chanid) is chan  # paramiko's failure handler drops it
    if not opened:
        if t.active:
            raise SessionRefused("the server refused another session")
        raise ConnectionLost("the connection is closed")
    adopt = getattr(transport, "adopt", None)
    if adopt is not None:  # OrderedTransport: the channel's messages go in order
        adopt(chan)
    return chan


async def exec_command(chan: paramiko.Channel, command: str) -> None:
    """Start ``command`` on ``chan``. Raises ConnectionLost when the server refuses it or
    the channel closes first."""
    c: _Internals = chan
    reply = _Reply(asyncio.get_running_loop())
    m = paramiko.Message()
    m.add_byte(cMSG_CHANNEL_REQUEST)
    m.add_int(c.remote_chanid)
    m.add_string("exec")
    m.add_boolean(True)
    m.add_string(command)
    with c.lock:  # a close (which sets the channel's event) comes before this or after
        if chan.closed:
            raise ConnectionLost("the channel closed before its command started")
        c.event = reply
        c._event_pending()
    try:
        c.transport._send_user_message(m)
        await reply.future
    except BaseException:
        chan.close()
        raise
    if not c.event_ready:
        chan.close()
        raise ConnectionLost("the server did not start the command")


async def send_request(chan: paramiko.Channel, data: bytes) -> None:
    """Send ``data`` as the server's window allows, then end the input. A model that
    exits without reading it all is its business."""
    c: _Internals = chan
    window = _WindowOpened(c.lock, asyncio.get_running_loop())
    with c.lock:
        c.out_buffer_cv = window
    try:
        while data:
            if chan.closed or c.eof_sent:
                return
            if not chan.send_ready():
                window.waiter = asyncio.get_running_loop().create_future()
                if not chan.send_ready():  # granted meanwhile: no wakeup comes for it
                    await window.waiter
                window.waiter = None
                continue
            sent = chan.send(data)
            if sent == 0:
                return
            data = data[sent:]
        chan.shutdown_write()
    except (OSError, paramiko.SSHException, EOFError):
        return
