"""Where a container server's engine runs: the ``Host`` interface the container executor
drives, and ``LocalHost``, this machine (the remote one, over SSH, is
container_remote.py's ``SshHost``)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Protocol

from mer.domain import RunRequest, Server
from mer.errors import ExecutionError
from mer.execution import container_files as files
from mer.execution.local import LocalExecutor
from mer.execution.process import Process

__all__ = ["Host", "LocalHost"]


class Host(Protocol):
    """Where the engine runs: this machine, or a remote host over SSH."""

    where: str

    async def prepare(self, request: RunRequest, engine: str) -> str:
        """Check the engine is there; make the run's scratch directory; its path."""
        ...
    async def spawn(self, request: RunRequest, server: Server, argv: list[str]) -> Process: ...
    async def collect(self, scratch: str, request: RunRequest, text_cap: int) -> files.Collected:
        """The result, artifacts and logs of the run; removes the scratch directory."""
        ...
    async def discard(self, scratch: str) -> None: ...
    async def shell(self, script: str) -> tuple[int, str, str]:
        """Run a short POSIX sh script there: exit status, stdout, stderr."""
        ...
    async def kill_group(self, server: Server, pgid: int | None, mark: str | None) -> bool: ...


class LocalHost:
    where = "this machine"

    def __init__(self, local: LocalExecutor) -> None:
        self.local = local

    async def prepare(self, request: RunRequest, engine: str) -> str:
        if shutil.which(engine) is None:
            raise ExecutionError(f"cannot start {request.model}@{request.version}: the container "
                                 f"engine '{engine}' is not installed on this machine")
        wanted = files.input_files(request)
        return str(await asyncio.to_thread(files.make_local_scratch, request, wanted))

    async def spawn(self, request: RunRequest, server: Server, argv: list[str]) -> Process:
        return await self.local._spawn(request, server, argv)

    async def collect(self, scratch: str, request: RunRequest, text_cap: int) -> files.Collected:
        def collect() -> files.Collected:
            try:
                return files.collect_local(Path(scratch), request.output_dir,
                                           request.artifact_cap, text_cap)
            finally:
                files.remove_local_scratch(Path(scratch))

        return await asyncio.to_thread(collect)

    async def discard(self, scratch: str) -> None:
        await asyncio.to_thread(files.remove_local_scratch, Path(scratch))

    async def shell(self, script: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            "sh", "-c", script, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        return proc.returncode or 0, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")

    async def kill_group(self, server: Server, pgid: int | None, mark: str | None) -> bool:
        return await self.local.kill_group(server, pgid, mark)
