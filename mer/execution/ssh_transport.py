"""A paramiko Transport that never sends a channel's message after the server closed it.

paramiko checks that a channel is open and builds its message (data, EOF, a window
adjust) under the channel's lock, but sends it after releasing that lock. When the
server's CLOSE is handled in between (a model that exits without reading all of its
request), the transport thread answers CLOSE first and the message follows, for a
channel the server has freed. OpenSSH then drops the whole connection ("ieof packet
referred to nonexistent channel 0"), which ends every other run on it as `lost`: with
many runs at once on one pooled connection (a batch's fan-out over SSH) this happened
within a few hundred runs here.

So each channel's sends are checked against that channel and made under one lock with
the handling of the server's CLOSE: a message goes out before our CLOSE, or not at all
(the server closed the channel; the bytes had nowhere to go). The check is on the
channel itself, not on the server's id of it: the server reuses ids as soon as a channel
is freed, and a late message must not land in the channel that got its id.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

import paramiko
from paramiko.common import MSG_CHANNEL_CLOSE

__all__ = ["OrderedTransport"]

# paramiko's internals used here (typed Any: its stubs describe only the public API).
_Transport: Any = paramiko.Transport


class _ChannelSends:
    """What one channel sees as its transport: the transport, except that the channel's
    messages go through ``OrderedTransport.send_for``."""

    def __init__(self, transport: OrderedTransport, chan: paramiko.Channel) -> None:
        self._transport = transport
        self._chan = weakref.ref(chan)  # weak: the channel holds this (no reference cycle)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def _send_user_message(self, data: Any) -> None:
        chan = self._chan()
        if chan is not None:  # else nothing is left to send it for
            self._transport.send_for(chan, data)


class OrderedTransport(paramiko.Transport):
    def __init__(self, sock: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        me: Any = self
        self._order = threading.Lock()
        me._channel_handler_table = {**_Transport._channel_handler_table,
                                     MSG_CHANNEL_CLOSE: self._close_in_order}

    def open_channel(self, *args: Any, **kwargs: Any) -> paramiko.Channel:
        chan = super().open_channel(*args, **kwargs)
        self.adopt(chan)
        return chan

    def adopt(self, chan: paramiko.Channel) -> None:
        """Send ``chan``'s messages in order (ssh_start.py opens channels itself)."""
        chan.transport = _ChannelSends(self, chan)  # type: ignore[assignment]

    def _close_in_order(self, chan: Any, m: paramiko.Message) -> None:
        """The server closed ``chan``: as paramiko's own handler, but under the order
        lock, so that no message of that channel is sent after our CLOSE."""
        me: Any = self
        with self._order, chan.lock:
            chan.mer_closed_by_server = True
            msgs = chan._close_internal()
            me._unlink_channel(chan.chanid)
        for msg in msgs:
            if msg is not None:
                _Transport._send_user_message(self, msg)

    def send_for(self, chan: Any, data: Any) -> None:
        me: Any = self
        while True:
            # NOTE: a key exchange is waited out before the lock is taken: the transport
            # thread may need the lock (a CLOSE) before it can finish the exchange.
            me.clear_to_send.wait(0.1)
            if not me.active:
                return  # as paramiko: the connection is dead, the message goes nowhere
            with self._order:
                if not me.clear_to_send.is_set():
                    continue
                if getattr(chan, "mer_closed_by_server", False):
                    return  # the server freed that channel: it would drop the connection
                _Transport._send_user_message(self, data)
                return
