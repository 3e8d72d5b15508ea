"""What the executors that drive another program's client share (containers: the engine's
CLI; Slurm: srun), here or on a host over the pooled SSH connection: a process that is the
client's own process plus what the wrapper adds, and host keys that belong to the host."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from mer.domain import Server
from mer.errors import ExecutionError
from mer.execution.local import LocalExecutor
from mer.execution.process import Process

if TYPE_CHECKING:
    from mer.execution.ssh import SshExecutor

__all__ = ["ClientProcess", "HostKeysOverSsh"]


class ClientProcess:
    """Forwards a Process's calls to the client's own process, ``inner``; a subclass adds
    what its client needs (the job line, the container's removal) and its own ``kill``."""

    def __init__(self, inner: Process) -> None:
        self.inner = inner

    @property
    def pid(self) -> int | None:
        return self.inner.pid

    @pid.setter
    def pid(self, value: int | None) -> None:
        self.inner.pid = value

    async def write(self, data: bytes) -> None:
        await self.inner.write(data)

    async def close_stdin(self) -> None:
        await self.inner.close_stdin()

    async def read_stdout(self) -> bytes:
        return await self.inner.read_stdout()

    async def read_stderr(self) -> bytes:
        return await self.inner.read_stderr()

    async def wait(self) -> int | None:
        return await self.inner.wait()

    def alive(self) -> bool:
        return self.inner.alive()

    async def group_id(self) -> int | None:
        return await self.inner.group_id()


class HostKeysOverSsh:
    """A server with a host is reached over SSH, whose executor knows its host key; one
    without runs the client on this machine and has none. ``HERE`` says what it runs.
    The client runs through ``_local`` here, or through the SSH executor, made when a
    host is first used (paramiko loads then). Comes before ProcessExecutor in the bases."""

    HERE = "runs its client on this machine"

    def __init__(self, *, ssh_config: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._local = LocalExecutor(**kwargs)
        self._ssh_kwargs = {**kwargs, "ssh_config": ssh_config} if ssh_config else kwargs
        self._ssh: SshExecutor | None = None

    def _ssh_executor(self) -> SshExecutor:
        if self._ssh is None:
            from mer.execution.ssh import SshExecutor

            self._ssh = SshExecutor(**self._ssh_kwargs)
        return self._ssh

    async def close(self) -> None:
        try:
            await super().close()  # type: ignore[misc]  # ProcessExecutor's, next in the bases
        finally:
            await self._local.close()
            if self._ssh is not None:
                with contextlib.suppress(Exception):
                    await self._ssh.close()

    async def host_key(self, server: Server) -> str:
        if not server.host:
            raise ExecutionError(f"server '{server.name}' {self.HERE}: it has no host key to "
                                 f"trust")
        return await self._ssh_executor().host_key(server)

    async def trust(self, server: Server, expect: str | None = None) -> str:
        if not server.host:
            return await self.host_key(server)
        return await self._ssh_executor().trust(server, expect)
