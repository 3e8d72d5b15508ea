"""The container engine's CLI (podman or docker) as the container executor uses it: the
command lines of a run, of a container's removal and of the reaper's; and what the
engine's own errors mean, told in one line (``start_failure``) and held back from the
run's output until then (``EngineErrors``)."""

from __future__ import annotations

import re
import shlex
from typing import Any
from uuid import UUID

from mer.domain import ContainerSpec, RunRequest, RunResult, Server
from mer.errors import ExecutionError

__all__ = ["DEFAULT_ENGINE", "ENGINE_FAILED", "ENGINE_TIMEOUT", "NOT_FOUND", "EngineErrors",
           "container_name", "container_spec", "engine_of", "reap_script", "rm_script", "run_argv",
           "start_failure"]

DEFAULT_ENGINE = "podman"
ENGINE_TIMEOUT = 60.0  # seconds an `rm -f`, `ps` or `version` of the engine may take
# A container's own exit statuses when the engine could not run it (podman and docker).
ENGINE_FAILED, CANNOT_INVOKE, NOT_FOUND = 125, 126, 127


def container_name(run_id: UUID) -> str:
    return f"mer-{run_id}"


def engine_of(server: Server) -> str:
    return server.engine or DEFAULT_ENGINE


def container_spec(request: RunRequest) -> ContainerSpec:
    """The image and limits of a run; a model without an image cannot run here."""
    if request.container is None:
        raise ExecutionError(f"cannot start {request.model}@{request.version}: a model on a "
                             f"container server needs an image (`model set "
                             f"{request.model}@{request.version} image IMAGE`)")
    return request.container


def run_argv(engine: str, request: RunRequest, spec: ContainerSpec, scratch: str) -> list[str]:
    """The engine's ``run`` command line of one run (every value one argv word)."""
    if any(c in scratch for c in ":,"):
        raise ExecutionError(f"cannot start {request.model}@{request.version}: the scratch "
                             f"directory {scratch} holds ':' or ',', which a volume cannot; "
                             f"set MER_DATA_DIR to a plain path")
    argv = [engine, "run", "--rm", "-i", "--name", container_name(request.run_id),
            "--pull", "never", "--network", spec.network,
            "--label", f"mer.run={request.run_id}", "--label", f"mer.dir={scratch}",
            "-v", f"{scratch}/input:/data/input:ro", "-v", f"{scratch}/output:/data/output",
            "-v", f"{scratch}/log:/data/log", "-e", f"MER_RUN_ID={request.run_id}"]
    owner = request.env.get("MER_OWNER")
    if owner:
        argv += ["--label", f"mer.owner={owner}"]
    if spec.cpus is not None:
        argv += ["--cpus", f"{spec.cpus:g}"]
    if spec.memory is not None:
        argv += ["--memory", spec.memory]
    if request.workdir:
        argv += ["--workdir", request.workdir]
    for key, value in request.env.items():
        if key != "MER_OWNER":
            argv += ["-e", f"{key}={value}"]
    return [*argv, spec.image, *request.command]


def rm_script(engine: str, name: str, grace: float) -> str:
    # podman stops with TERM, then KILL after -t seconds; docker's rm -f KILLs at once.
    wait = f" -t {int(grace)}" if engine == "podman" else ""
    return f"{shlex.quote(engine)} rm -f{wait} {shlex.quote(name)} 2>/dev/null"


# Remove the containers of a mer that died (by its owner label) and their scratch
# directories. Exit 3: there were none.
_REAP = r"""e={engine}
ids=$($e ps -aq --filter label=mer.owner={token}) || exit 1
[ -n "$ids" ] || exit 3
dirs=$($e inspect --format '{{{{index .Config.Labels "mer.dir"}}}}' $ids 2>/dev/null)
$e rm -f{wait} $ids >/dev/null 2>&1
printf '%s\n' "$dirs" | while IFS= read -r d; do
  case "${{d##*/}}" in mer-run-*|.mer-run-*) rm -rf -- "$d" ;; esac
done
exit 0
"""


def reap_script(engine: str, token: str) -> str:
    """The script that removes the containers labelled with owner ``token``, and their
    scratch directories; it exits 3 when there were none."""
    return _REAP.format(engine=shlex.quote(engine), token=shlex.quote(token),
                        wait=" -t 0" if engine == "podman" else "")


class EngineErrors:
    """A stderr sink, line-buffered, that holds back the engine's own error lines
    (``Error: ...``) until the run's end: an engine that could not start the container is
    then reported in one line (``start_failure``), not also as raw output first."""

    PREFIXES = (b"Error: ", b"Error response from daemon", b"docker: ", b"Unable to find image")

    def __init__(self, sink: Any) -> None:
        self.sink = sink
        self.buf = bytearray()
        self.held: list[bytes] = []

    def feed(self, chunk: bytes) -> None:
        self.buf += chunk
        while True:
            ends = [i for i in (self.buf.find(b"\n"), self.buf.find(b"\r")) if i >= 0]
            if not ends:
                return
            cut = min(ends) + 1
            line = bytes(self.buf[:cut])
            del self.buf[:cut]
            if line.startswith(self.PREFIXES):
                self.held.append(line)
            else:
                self.sink(line)

    def release(self, held: bool = True) -> None:
        """Pass on what is left; the held lines too unless ``held`` is False."""
        lines, self.held = (self.held if held else []), []
        if self.buf:
            lines.append(bytes(self.buf))
            self.buf.clear()
        for line in lines:
            self.sink(line)


_MISSING_MOUNT = re.compile(r"(?:statfs |bind source path does not exist: )(\S+?)(?::|$|\s)")


def start_failure(result: RunResult, request: RunRequest, engine: str, where: str) -> str | None:
    """Why the engine could not run the container, in one line; None when it ran."""
    code = result.exit_code
    if code not in (ENGINE_FAILED, CANNOT_INVOKE, NOT_FOUND):
        return None
    errors = [line.strip() for line in result.stderr.splitlines() if "Error" in line]
    if not errors:
        return None
    last, spec = errors[-1], container_spec(request)
    if code == ENGINE_FAILED:
        if "image not known" in last or "No such image" in last:
            return (f"image '{spec.image}' is not on {where}; `{engine} pull` or `{engine} load` "
                    f"it there first (mer never pulls during a run)")
        missing = _MISSING_MOUNT.search(last)
        if missing:
            return f"mount path {missing.group(1)} does not exist on {where}"
        return f"{engine} could not run the container on {where}: {last.removeprefix('Error: ')}"
    if "OCI runtime" in last or "executable file not found" in last:
        program = request.command[0] if request.command else "its entrypoint"
        return f"image '{spec.image}' cannot run {program}: {last.rsplit(': ', 1)[-1]}"
    return None
