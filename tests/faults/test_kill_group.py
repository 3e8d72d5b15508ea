"""kill_group ends a run's whole process group from any mer (the one that started it may
be dead): TERM, then KILL, locally and over a real sshd; a group whose processes do
not carry the starting mer's MER_OWNER (a reused id) is left alone."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from mer.domain import RunRequest, Server
from mer.execution.local import LocalExecutor
from mer.execution.ssh import SshExecutor

# The leader ignores TERM, so only the KILL after the grace period ends it; its child
# is a second member of the group.
SCRIPT = "trap '' TERM; sleep 1000 & sleep 1000; wait"


def _group(pgid: int) -> list[int]:
    """Live (not zombie) processes of the group, read from /proc: sshd runs on this
    machine, so its sessions' processes are visible here too."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


async def _until_gone(pgid: int) -> list[int]:
    """Waits for an exited process's parent to reap it; bounded, not a timing check."""
    for _ in range(200):
        if not _group(pgid):
            return []
        await asyncio.sleep(0.05)
    return _group(pgid)


async def _until_grouped(pgid: int, members: int) -> None:
    for _ in range(200):
        if len(_group(pgid)) >= members:
            return
        await asyncio.sleep(0.05)


def _request() -> RunRequest:
    # As runs do: every model carries the mark of the mer that started it.
    return RunRequest("sleepy", "1", ["sh", "-c", SCRIPT], {}, env={"MER_OWNER": uuid.uuid4().hex})


async def _check_kill_group(starter: Any, killer: Any, server: Server) -> None:
    request = _request()
    proc = await starter._spawn(request, server, request.command)
    pgid = await proc.group_id()
    assert pgid is not None and os.getpgid(pgid) == pgid  # the group id, as the run records it
    await _until_grouped(pgid, 3)  # sh and its two sleeps
    members = _group(pgid)
    assert len(members) == 3
    # Another run's id: a reused group id is not ours to kill.
    assert await killer.kill_group(server, pgid, "MER_OWNER=someone-else") is False
    assert _group(pgid) == members
    assert await killer.kill_group(server, pgid, f"MER_OWNER={request.env['MER_OWNER']}") is True
    assert await _until_gone(pgid) == []
    assert await killer.kill_group(server, pgid, f"MER_OWNER={request.env['MER_OWNER']}") is False


async def test_local_kill_group_ends_the_whole_group() -> None:
    starter, killer = LocalExecutor(), LocalExecutor(grace=0.2)
    try:
        await _check_kill_group(starter, killer, Server(name="local"))
        assert await killer.kill_group(Server(name="local"), 1) is False  # never init's group
    finally:
        await starter.close()
        await killer.close()


@pytest.mark.ssh
async def test_ssh_kill_group_ends_the_whole_remote_group(sshd_server) -> None:
    """The killer has its own connection, as a new mer after the old one was kill -9'd."""
    starter, killer = SshExecutor(), SshExecutor(grace=0.2)
    try:
        await _check_kill_group(starter, killer, sshd_server.server)
    finally:
        await starter.close()
        await killer.close()
