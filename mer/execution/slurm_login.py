"""A Slurm server's login node: the Slurm client commands run there, over the ssh
executor's pooled connection. The container executor's remote host (its process
machinery, its short scripts on channels of the same connection), plus a script that
reads input (``sbatch``'s request file)."""

from __future__ import annotations

from mer.execution.container_remote import SshHost

__all__ = ["LoginNode"]


class LoginNode(SshHost):
    async def run(self, script: str, stdin: bytes = b"") -> tuple[int, bytes, str]:
        """``script`` in the login user's shell, ``stdin`` its input: (exit status,
        stdout, stderr). Raises ConnectError."""
        feed = (lambda fh: fh.write(stdin)) if stdin else None
        code, out, err = await self._run(lambda: self._exec(script, feed=feed))
        return code, out, err.decode("utf-8", "replace")
