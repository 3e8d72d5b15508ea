"""The one rule set for what mer stores and runs: names, hosts, commands, environments
and parameters. Pure functions over mer.domain types that raise UsageError with one line
naming the field; the services, the catalog loader (mer/db) and the executors all call
them, so no path into the database or onto a server skips a rule.

Why these rules: nothing in a stored command or environment may become an option or code
on the remote side. A first word starting with ``-`` is an option of the remote shell's
``exec`` (bash: ``exec -a x touch F`` runs touch); an environment key that is not a
variable name is an option or a script of ``env`` (GNU ``env -S``); NUL and newline end
a C string or a shell line early, and no name or parameter needs them.

Imports: mer.domain and mer.errors only.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping
from typing import Any

from mer.domain import ENGINES, FRAMINGS, MODES, NETWORKS, ModelConfig, Server
from mer.errors import UsageError

__all__ = ["InvalidField", "check_argv", "check_env", "check_input_name", "check_params", "check_text",
           "validate_model", "validate_server"]

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# An engine's memory size: a number with an optional unit (b, k, m, g).
MEMORY = re.compile(r"[0-9]+(\.[0-9]+)?[bkmgBKMG]?\Z")
_BAD_CHARS = (("\0", "a NUL byte"), ("\n", "a newline"), ("\r", "a carriage return"))


class InvalidField(UsageError):
    """A rule broken by one field; ``field`` names it (as the catalog file spells it), so
    a caller that reports an entry (the catalog loader) can name the field too."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _bad_char(value: str, nul_only: bool = False) -> str | None:
    chars = _BAD_CHARS[:1] if nul_only else _BAD_CHARS
    return next((name for char, name in chars if char in value), None)


def check_text(field: str, value: str | None, *, nul_only: bool = False) -> None:
    """Refuse NUL, newline and carriage return in one text field (``nul_only``: NUL)."""
    bad = _bad_char(value, nul_only) if value is not None else None
    if bad:
        raise InvalidField(field, f"{field}: contains {bad}; remove it")


def check_argv(field: str, argv: list[str] | None, *, nul_only: bool = False) -> None:
    """An argv whose words are all plain text and whose program is not an option."""
    if not argv:
        return
    for i, word in enumerate(argv, start=1):
        bad = _bad_char(word, nul_only)
        if bad:
            raise InvalidField(field, f"{field}: argument {i} contains {bad}; remove it")
    if argv[0].startswith("-"):
        raise InvalidField(field, f"{field}: the program {argv[0]!r} starts with '-', which a shell "
                         f"or env would take as an option; name the program first")


def check_env(env: Mapping[str, str], field: str = "env", *, nul_only: bool = False) -> None:
    """Keys are variable names (they cannot be options of env); values plain text."""
    for key, value in env.items():
        if not isinstance(key, str) or not ENV_NAME.match(key):
            raise InvalidField(field, f"{field}: key {key!r} is not a variable name "
                             f"(letters, digits and '_', not starting with a digit)")
        check_text(f"{field}.{key}", value, nul_only=nul_only)


def check_params(value: Any, field: str = "parameters") -> None:
    """Keys and string values of a JSON document, at any depth."""
    if isinstance(value, str):
        check_text(field, value)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            bad = _bad_char(str(key))
            if bad:
                raise InvalidField(field, f"{field}: key {key!r} contains {bad}; remove it")
            check_params(item, f"{field}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_params(item, f"{field}[{i}]")


def validate_model(model: ModelConfig) -> None:
    """Every rule for a model's fixed fields; raises UsageError naming the field."""
    check_text("name", model.name)
    check_text("version", model.version)
    check_text("server", model.server)
    if not model.name or any(c.isspace() or c in "@/" for c in model.name):
        raise InvalidField("name", f"model name '{model.name}' must be non-empty, without spaces, "
                           "'@' or '/'")
    if not model.version or any(c.isspace() for c in model.version):
        raise InvalidField("version", f"model version '{model.version}' must be non-empty, "
                           "without spaces")
    if not model.command and not model.image:
        raise InvalidField("command", "--command must name a program to run")
    check_argv("command", model.command)
    _validate_container(model)
    check_argv("train_command", model.train_command)
    check_text("workdir", model.workdir)
    check_env(model.env)
    if model.mode not in MODES:
        raise InvalidField("mode", f"mode '{model.mode}' is not one of {', '.join(MODES)}")
    if model.framing not in FRAMINGS:
        raise InvalidField("framing", f"framing '{model.framing}' is not one of {', '.join(FRAMINGS)}")
    if model.timeout is not None and model.timeout <= 0:
        raise InvalidField("timeout", "timeout must be a positive number of seconds")


def _validate_container(model: ModelConfig) -> None:
    """The container fields: only with an image; nothing an engine would take as an option."""
    if model.image is None:
        for name in ("cpus", "memory", "network"):
            if getattr(model, name) is not None:
                raise InvalidField(name, f"--{name} is for container models; give --image too")
        return
    check_text("image", model.image)
    if not model.image or model.image.startswith("-") or any(c.isspace() for c in model.image):
        raise InvalidField("image", f"image {model.image!r} must be non-empty, without spaces, not "
                         f"starting with '-'")
    if model.cpus is not None and not model.cpus > 0:
        raise InvalidField("cpus", f"cpus {model.cpus:g} must be a positive number")
    if model.memory is not None and not MEMORY.match(model.memory):
        raise InvalidField("memory", f"memory {model.memory!r} is not a size such as 512m or 2g")
    if model.network is not None and model.network not in NETWORKS:
        raise InvalidField("network", f"network '{model.network}' is not one of {', '.join(NETWORKS)}")
    if model.workdir is not None and not model.workdir.startswith("/"):
        raise InvalidField("workdir", f"workdir {model.workdir!r} of a container model is a path inside "
                         f"the container: it must start with '/'")


def check_input_name(name: str) -> None:
    """A name under /data/input (``run --input-file NAME=PATH``): one plain file name."""
    check_text("--input-file", name)
    if (not name or name in (".", "..", "request.json") or "/" in name
            or name.startswith("-")):
        raise InvalidField("--input-file", f"--input-file name {name!r} must be a plain file name (not "
                         f"request.json, without '/')")


def validate_server(server: Server, kinds: Iterable[str] | None = None) -> None:
    """Every rule for a server; ``kinds``: the server kinds that have an executor (None:
    not checked). Raises InvalidField (a UsageError) naming the field."""
    for field in ("name", "kind", "host", "user", "identity_file", "known_hosts", "partition",
                  "account", "slurm_args"):
        check_text(field, getattr(server, field))
    if not server.name or any(c.isspace() for c in server.name):
        raise InvalidField("name", f"server name '{server.name}' must be non-empty, without spaces")
    if kinds is not None and server.kind not in (known := sorted(kinds)):
        raise InvalidField("kind", f"kind '{server.kind}' is not one of {', '.join(known)}")
    if server.host is not None and (server.host.startswith("-") or any(c.isspace() for c in server.host)):
        raise InvalidField("host", f"host {server.host!r} must not start with '-' or contain spaces")
    if server.user is not None and server.user.startswith("-"):
        raise InvalidField("user", f"user {server.user!r} must not start with '-'")
    if server.kind == "ssh" and not server.host:
        raise InvalidField("host", "an ssh server needs --host")
    if server.engine is not None:
        if server.kind != "container":
            raise InvalidField("engine", "--engine is for servers of kind container")
        if server.engine not in ENGINES:
            raise InvalidField("engine", f"engine '{server.engine}' is not one of {', '.join(ENGINES)}")
    _validate_slurm(server)
    if server.port is not None and not 0 < server.port < 65536:
        raise InvalidField("port", f"port {server.port} is not a TCP port (1-65535)")
    if server.max_runs < 1:
        raise InvalidField("max_runs", "--max-runs must be at least 1")


def _validate_slurm(server: Server) -> None:
    """The Slurm fields: only for kind slurm; names that are not options; extra
    arguments that are all options (a stray word would become the program srun runs)."""
    fields = (("partition", "--partition"), ("account", "--account"), ("slurm_args", "--slurm-args"))
    if server.kind != "slurm":
        for name, flag in fields:
            if getattr(server, name) is not None:
                raise InvalidField(name, f"{flag} is for servers of kind slurm")
        return
    for name in ("partition", "account"):
        value = getattr(server, name)
        if value is not None and (not value or value.startswith("-") or any(c.isspace() for c in value)):
            raise InvalidField(name, f"{name} {value!r} must be non-empty, without spaces, not starting "
                               f"with '-'")
    if server.slurm_args is not None:
        try:
            words = shlex.split(server.slurm_args)
        except ValueError as err:
            raise InvalidField("slurm_args", f"slurm_args: {err}") from None
        stray = next((w for w in words if not w.startswith("-")), None)
        if stray is not None:
            raise InvalidField("slurm_args", f"slurm_args: {stray!r} is not an option; give each one "
                               f"as --name=value (they go to srun and sbatch)")
