"""Who owns a running run: this mer process, told apart from any other that ever had or
will have its pid.

A run's row names its owner (host, pid, and the pid's own start: the boot id and the
process's start time in clock ticks, so a reused pid or a reboot never passes for the
owner). A row still ``running`` whose owner on this host is gone was left by a mer that
was killed (``kill -9``, a power cut): it is finished ``lost`` and its model's process
group killed (mer/services/reaping.py). Rows owned by other hosts are never judged here:
from this host nobody can tell whether their owner lives.
"""

from __future__ import annotations

import functools
import os
import socket
from dataclasses import dataclass

__all__ = ["Owner", "owner_alive", "owner_token", "process_start", "this_owner"]


@dataclass(frozen=True, slots=True)
class Owner:
    host: str
    pid: int
    start: str | None  # "<boot id>:<start ticks>"; None where /proc cannot tell

    @property
    def token(self) -> str:
        """Put into every model's environment as MER_OWNER: a process group that holds
        it was started by this mer, not by whoever got the same id since."""
        return owner_token(self.pid, self.start)


def owner_token(pid: int | None, start: str | None) -> str:
    return f"{pid}:{start}"


def _boot_id() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return None


def _start_ticks(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # Field 22; the command name (field 2) may hold spaces and parentheses.
    return stat.rsplit(b")", 1)[1].split()[19].decode()


def process_start(pid: int) -> str | None:
    """``<boot id>:<start time>`` of a live process: what its pid alone cannot say once
    pids wrap."""
    boot, ticks = _boot_id(), _start_ticks(pid)
    return f"{boot}:{ticks}" if boot and ticks else None


@functools.cache
def this_owner() -> Owner:
    pid = os.getpid()
    owner = Owner(host=socket.gethostname(), pid=pid, start=process_start(pid))
    # Every model carries MER_OWNER (runs put it into the request's env). Set in mer's
    # own environment too, a local model inherits it with no environment built per run.
    os.environ["MER_OWNER"] = owner.token
    return owner


def owner_alive(host: str | None, pid: int | None, start: str | None) -> bool | None:
    """True while that owner runs, False once it is gone, None when this host cannot
    tell (another host, or a row without an owner)."""
    if host is None or pid is None or host != this_owner().host:
        return None
    if start is None:
        return None
    boot = start.split(":", 1)[0]
    if boot != _boot_id():
        return False  # rebooted since: every process of then is gone
    return process_start(pid) == start
