"""A pooled SSH connection serves only servers with its whole connection identity:
each server authenticates with its own key and checks the host key against its own
known_hosts, whatever ran before it on the same host, port and user (real sshd)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mer.domain import RunRequest, RunStatus, Server
from mer.errors import ConnectError, HostKeyError
from mer.execution.ssh import SshExecutor

pytestmark = pytest.mark.ssh


def _touch(canary: Path) -> RunRequest:
    return RunRequest("touch", "1", ["touch", str(canary)], {})


def _servers(sshd_server, tmp_path: Path, bad: str) -> tuple[Server, Server]:
    """The fixture's good server and a second one on the same host, port and user that
    differs only in ``bad``: a key not in authorized_keys, or an empty known_hosts."""
    good = dataclasses.replace(sshd_server.server, name="good")
    if bad == "identity_file":
        changed = {"identity_file": str(sshd_server.wrong_key)}
    else:
        empty = tmp_path / "empty_known_hosts"
        empty.write_text("")
        changed = {"known_hosts": str(empty)}
    return good, dataclasses.replace(good, name="bad", **changed)


@pytest.mark.parametrize(("bad", "error", "message"), [
    ("identity_file", ConnectError, "refused every key"),
    ("known_hosts", HostKeyError, "is not known"),
])
@pytest.mark.parametrize("good_first", [True, False], ids=["good-first", "bad-first"])
async def test_each_server_connects_with_its_own_identity(
    sshd_server, tmp_path: Path, shared_dir: Path, bad: str, error: type[Exception], message: str, good_first: bool
) -> None:
    good, wrong = _servers(sshd_server, tmp_path, bad)
    canary = shared_dir / "canary"
    ex = SshExecutor()
    try:
        if good_first:
            assert (await ex.run(_touch(shared_dir / "ok"), good)).status is RunStatus.SUCCEEDED
        with pytest.raises(error, match=message):
            await ex.run(_touch(canary), wrong)
        assert not canary.exists()
        assert (await ex.run(_touch(shared_dir / "ok2"), good)).status is RunStatus.SUCCEEDED
    finally:
        await ex.close()


@pytest.mark.parametrize("bad", ["identity_file", "known_hosts"])
async def test_a_changed_server_drops_its_pooled_connection(sshd_server, tmp_path: Path, shared_dir: Path,
                                                            bad: str) -> None:
    """The same server name with changed fields (an update, a catalog reload) never runs
    on the connection opened for its old fields."""
    good, wrong = _servers(sshd_server, tmp_path, bad)
    wrong = dataclasses.replace(wrong, name=good.name)
    canary = shared_dir / "canary"
    ex = SshExecutor()
    try:
        assert (await ex.run(_touch(shared_dir / "ok"), good)).status is RunStatus.SUCCEEDED
        with pytest.raises(ConnectError):
            await ex.run(_touch(canary), wrong)
        assert not canary.exists()
    finally:
        await ex.close()
