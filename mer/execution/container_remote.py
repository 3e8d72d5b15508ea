"""The remote host of a container server: the engine runs on another machine, reached
over the ssh executor's pooled connection. Its process machinery starts the engine's
client (so a run's process group is known and killed as any remote model's); short
scripts on channels of the same connection make, fill and empty the scratch directory
(tar streams both ways: one round trip before a run, one after) and remove containers.
"""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Callable
from typing import IO, Any

import paramiko

from mer.domain import RunRequest, Server
from mer.errors import ConnectError, ExecutionError
from mer.execution import container_files as files
from mer.execution.process import ConnectionLost, Process
from mer.execution.ssh import SshExecutor
from mer.execution.ssh_threads import run_blocking

__all__ = ["SshHost"]

# Check the engine, make the scratch directory, unpack /data/input from stdin; print
# the directory. Exit 127: no engine.
_PREPARE = r"""command -v {engine} >/dev/null 2>&1 || exit 127
d=$(mktemp -d "${{TMPDIR:-/tmp}}/{prefix}XXXXXXXXXX") || exit 1
if mkdir "$d/input" "$d/output" "$d/log" && chmod 755 "$d" "$d/input" &&
   chmod 777 "$d/output" "$d/log" && tar -C "$d/input" -xf -; then
  echo "$d"; exit 0
fi
rm -rf -- "$d"; exit 1
"""


def _last_line(text: bytes | str, default: str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    lines = text.strip().splitlines()
    return lines[-1] if lines else default


class SshHost:
    def __init__(self, ssh: SshExecutor, server: Server) -> None:
        self.ssh, self.server = ssh, server
        self.where = server.host or server.name

    def _exec(self, script: str, feed: Callable[[Any], None] | None = None,
              read: Callable[[Any], Any] | None = None) -> tuple[int, Any, bytes]:
        """Blocking: ``script`` on a new channel of the pooled connection; ``feed``
        writes its stdin, ``read`` takes its stdout (else it is returned as bytes)."""
        # NOTE: the ssh executor's own pool, so one connection serves both.
        _, chan = self.ssh._channel(self.server)
        try:
            chan.exec_command(script)
            if feed is not None:
                with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
                    # A script that ended early (no engine) reads no input.
                    stdin = chan.makefile("wb")
                    feed(stdin)
                    stdin.flush()
            chan.shutdown_write()
            out_file = chan.makefile("rb")
            out = read(out_file) if read is not None else out_file.read()
            err = chan.makefile_stderr("rb").read()
            return chan.recv_exit_status(), out, err
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise ConnectionLost(str(exc) or "channel closed") from exc
        finally:
            chan.close()

    async def _run(self, fn: Callable[[], Any]) -> Any:
        try:
            return await run_blocking(fn)
        except ConnectionLost as exc:
            raise ConnectError(f"lost the connection to {self.server.name}: {exc}") from exc

    async def prepare(self, request: RunRequest, engine: str) -> str:
        wanted = files.input_files(request)
        script = _PREPARE.format(engine=shlex.quote(engine), prefix=files.SCRATCH_PREFIX)
        code, out, err = await self._run(
            lambda: self._exec(script, feed=lambda fh: files.write_input_tar(fh, request, wanted)))
        ref = f"{request.model}@{request.version}"
        if code == 127:
            raise ExecutionError(f"cannot start {ref}: the container engine '{engine}' is not "
                                 f"installed on {self.where}")
        scratch = _last_line(out, "")
        if code != 0 or not scratch.startswith("/"):
            raise ExecutionError(f"cannot start {ref}: preparing /data/input on {self.where} "
                                 f"failed: {_last_line(err, f'exit status {code}')}")
        return scratch

    async def spawn(self, request: RunRequest, server: Server, argv: list[str]) -> Process:
        return await self.ssh._spawn(request, server, argv)

    async def collect(self, scratch: str, request: RunRequest, text_cap: int) -> files.Collected:
        q = shlex.quote(scratch)
        script = f"cd {q} && tar -cf - output log; s=$?; cd / && rm -rf -- {q}; exit $s"

        def read(fh: IO[bytes]) -> files.Collected:
            return files.read_output_tar(fh, request.output_dir, request.artifact_cap, text_cap)

        code, got, err = await self._run(lambda: self._exec(script, read=read))
        if code != 0:
            raise ExecutionError(f"reading /data/output on {self.where} failed: "
                                 f"{_last_line(err, f'exit status {code}')}")
        return got  # type: ignore[no-any-return]

    async def discard(self, scratch: str) -> None:
        await self.shell(f"rm -rf -- {shlex.quote(scratch)}")

    async def shell(self, script: str) -> tuple[int, str, str]:
        code, out, err = await self._run(lambda: self._exec(script))
        return code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")

    async def kill_group(self, server: Server, pgid: int | None, mark: str | None) -> bool:
        return await self.ssh.kill_group(server, pgid, mark)
