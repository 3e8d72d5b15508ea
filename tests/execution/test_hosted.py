"""Executors that drive a client here or on a host over SSH share their host-key rules:
a server without a host has no key to trust, and says what runs here."""

from __future__ import annotations

import pytest

from mer.domain import Server
from mer.errors import ExecutionError
from mer.execution.container import ContainerExecutor
from mer.execution.slurm import SlurmExecutor


@pytest.mark.parametrize(("executor", "kind", "here"), [
    (ContainerExecutor, "container", "runs containers on this machine"),
    (SlurmExecutor, "slurm", "runs the Slurm client on this machine"),
])
async def test_a_server_without_a_host_has_no_host_key_to_trust(executor, kind, here) -> None:
    ex = executor()
    try:
        for ask in (ex.host_key, ex.trust):
            with pytest.raises(ExecutionError) as err:
                await ask(Server(name="box", kind=kind))
            assert str(err.value) == f"server 'box' {here}: it has no host key to trust"
    finally:
        await ex.close()
