"""The command lines mer hands to a remote login shell (POSIX sh: dash, bash, ...):
starting a model so that its process group id is known, and killing a group later.

Every word is quoted, so nothing is interpreted by the shell, and nothing a user stored
becomes an option: dash's ``exec`` and ``kill`` reject ``--``, so a program starting
with ``-`` is refused (check_runnable) rather than escaped; env keys are variable names
and follow ``env --``; a workdir starting with ``-`` is given as ``./-...``.
"""

from __future__ import annotations

import shlex

from mer.domain import RunRequest
from mer.errors import ExecutionError
from mer.execution.process import check_runnable

__all__ = ["build_kill_group", "build_remote_command"]


# Variables a login shell will not let a script export (readonly in bash).
_SHELL_OWNED = frozenset({"BASHOPTS", "BASH_VERSINFO", "EUID", "PPID", "SHELLOPTS", "UID"})


def build_remote_command(request: RunRequest, command: list[str]) -> str:
    """The command line the remote user's shell runs: every argv element quoted, so
    nothing in it is interpreted by a shell, and nothing becomes an option.

    sshd makes each session's shell a session and process-group leader (it calls
    setsid), so that shell's ``$$`` is the group id; it prints it, then ``exec``s the
    model in its place, which keeps the pid and so the group.
    Raises ExecutionError for what cannot be made safe (see the module docstring).
    """
    check_runnable(request, command)
    if request.env and "=" in command[0]:  # env would take it for an assignment
        raise ExecutionError(f"cannot start {request.model}@{request.version}: command: "
                             f"the program {command[0]!r} contains '='")
    script = f"echo $$; export MER_RUN_ID={shlex.quote(str(request.run_id))}; "
    if request.workdir:
        workdir = request.workdir if not request.workdir.startswith("-") else "./" + request.workdir
        script += f"cd {shlex.quote(workdir)} || exit 126; "
    pairs = [shlex.quote(f"{k}={v}") for k, v in request.env.items()]
    if pairs and not _SHELL_OWNED.intersection(request.env):
        # Exported by the shell itself: `exec env ...` cost a second exec on the server
        # for every run (every run carries MER_OWNER).
        script += "export " + " ".join(pairs) + "; "
        pairs = []
    script += "exec "
    if pairs:  # a name the shell keeps for itself (bash's UID, PPID...): env sets it
        script += "env -- " + " ".join(pairs) + " "
    return script + " ".join(shlex.quote(a) for a in command)


# Run by the remote login shell (POSIX sh; dash's kill takes no "--"). Exit 3: no such
# group, or none of its processes carries the mark (the group id was reused).
_KILL_GROUP = r"""pg={pgid}; mark={mark}; n={polls}
ours() {{
  [ -d /proc/self ] || {{ kill -0 -$pg 2>/dev/null; return; }}
  for d in /proc/[0-9]*; do
    s=$(cat "$d/stat" 2>/dev/null) || continue
    s=${{s##*) }}; set -- $s
    [ "$3" = "$pg" ] || continue
    [ -z "$mark" ] && return 0
    tr '\0' '\n' < "$d/environ" 2>/dev/null | grep -qxF -- "$mark" && return 0
  done
  return 1
}}
ours || exit 3
kill -TERM -$pg 2>/dev/null
i=0
while [ $i -lt $n ] && kill -0 -$pg 2>/dev/null; do sleep 0.05 2>/dev/null || sleep 1; i=$((i+1)); done
kill -KILL -$pg 2>/dev/null
exit 0
"""


def build_kill_group(pgid: int, mark: str | None, grace: float) -> str:
    """The remote script of ``SshExecutor.kill_group``."""
    return _KILL_GROUP.format(pgid=int(pgid), mark=shlex.quote(mark or ""),
                              polls=max(1, int(grace / 0.05)))
