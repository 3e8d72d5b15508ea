"""Resolving an SSH server through an OpenSSH client config (``~/.ssh/config``) as `ssh`
does: HostName, Port, User, IdentityFile and ProxyJump, read by paramiko's SSHConfig.

What is set on the server wins over the file, as command-line options win over it in
OpenSSH; the file's HostName replaces the alias for connecting and for known_hosts. A
missing file resolves nothing; a malformed one is a ConfigError naming the file.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import paramiko

from mer.errors import ConfigError, ConnectError
from mer.execution.ssh_connection import Identity

__all__ = ["MAX_HOPS", "SshConfigFile", "resolve_identity"]

MAX_HOPS = 8  # a ProxyJump chain longer than this is a loop in the file


class SshConfigFile:
    """The config file, parsed again only when it changed on disk. Lookups are kept per
    version of the file: paramiko's take ~0.1 ms per Host block, more than a pooled run
    itself on a large file (`Match exec` commands run once per version, too)."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path).expanduser() if path else None
        self._stamp: tuple[int, int, int] | None = None
        self._config: paramiko.SSHConfig | None = None
        self._lookups: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def error(self, what: object) -> ConfigError:
        return ConfigError(f"SSH config {self.path}: {what}; fix it, or point MER_SSH_CONFIG "
                           f"at another file")

    def _load(self) -> paramiko.SSHConfig | None:
        if self.path is None:
            return None
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        except OSError as err:
            raise self.error(err.strerror or err) from err
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        with self._lock:
            if stamp != self._stamp:
                try:
                    self._config = paramiko.SSHConfig.from_path(str(self.path))
                except (OSError, UnicodeDecodeError, paramiko.SSHException) as err:
                    raise self.error(err) from err
                self._stamp, self._lookups = stamp, {}
            return self._config

    def version(self) -> tuple[int, int, int] | None:
        """What changes when the file does (None: no file)."""
        return self._stamp if self._load() is not None else None

    def lookup(self, host: str) -> dict[str, Any]:
        """The options for ``host``, tokens (%h, %d, ~ ...) expanded; {} without a file."""
        config = self._load()
        if config is None:
            return {}
        found = self._lookups.get(host)
        if found is None:
            try:
                found = self._lookups[host] = dict(config.lookup(host))
            # NOTE: `Match exec` needs the optional `invoke` package (ImportError).
            except (paramiko.SSHException, ImportError, ValueError, OSError) as err:
                raise self.error(err) from err
        return found


def _port(config: SshConfigFile, what: str, value: Any) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        port = 0
    if not 0 < port < 65536:
        raise config.error(f"port {value!r} of {what} is not a port number")
    return port


def _first_key(files: list[str]) -> str | None:
    """OpenSSH offers every IdentityFile that exists; mer offers the first one."""
    for name in files:
        path = Path(name).expanduser()
        if path.is_file():
            return str(path.resolve())
    return None


def _split_jump(config: SshConfigFile, host: str, hop: str) -> tuple[str | None, str, int | None]:
    """``[user@]host[:port]`` (or ``ssh://...``, ``[v6 address]:port``) of a ProxyJump."""
    spec = hop.strip().removeprefix("ssh://")
    user, _, rest = spec.rpartition("@")
    if rest.startswith("["):
        name, _, tail = rest[1:].partition("]")
        port = tail.removeprefix(":") if tail.startswith(":") else None
    else:
        name, colon, port = rest.partition(":")
        port = port if colon else None
    if not name or any(c.isspace() for c in name) or name.startswith("-"):
        raise config.error(f"ProxyJump {hop!r} of {host} is not [user@]host[:port]")
    return user or None, name, _port(config, f"ProxyJump {hop!r}", port) if port else None


def resolve_identity(config: SshConfigFile, host: str, *, known_hosts: str,
                     port: int | None = None, user: str | None = None,
                     identity_file: str | None = None, jump: str | None = None,
                     hops: int = 0) -> Identity:
    """Where and how to connect to ``host``: the given values, then the config's.
    ``jump`` overrides the config's ProxyJump (the hosts before the last one of a chain,
    as `ssh -J a,b` connects to b through a). Raises ConfigError, ConnectError."""
    opts = config.lookup(host)
    if opts.get("proxycommand"):  # None when the file says `ProxyCommand none`
        raise ConnectError(f"{host} has a ProxyCommand in {config.path}, which mer does not "
                           f"run; use ProxyJump instead")
    if port is None and "port" in opts:
        port = _port(config, host, opts["port"])
    key = (str(Path(identity_file).expanduser().resolve()) if identity_file
           else _first_key(opts.get("identityfile", [])))
    spec = jump if jump is not None else opts.get("proxyjump", "")
    via = None
    if spec and spec.lower() != "none":
        if hops >= MAX_HOPS:
            raise config.error(f"the ProxyJump chain of {host} passes more than {MAX_HOPS} "
                               f"hosts (a loop?)")
        *before, last = spec.split(",")
        j_user, j_host, j_port = _split_jump(config, host, last)
        via = resolve_identity(config, j_host, known_hosts=known_hosts, port=j_port, user=j_user,
                               jump=",".join(before) or None, hops=hops + 1)
    return Identity(
        host=opts.get("hostname") or host, port=port or 22,
        user=user or opts.get("user") or os.environ.get("USER") or "root",
        identity_file=key, known_hosts=known_hosts, jump=via, alias=host,
    )
