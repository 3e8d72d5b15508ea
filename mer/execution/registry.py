"""Maps a server kind to its executor. `local`, `ssh`, `container` and `slurm` are built in
(imported on first use, so paramiko loads only when an ssh server is used); other packages add kinds
through the `mer.executors` entry-point group, each entry a factory
``factory(*, known_hosts=None, output_cap=...) -> Executor``; a factory that also takes
``ssh_config=`` (as the ssh executor does) gets the OpenSSH client config file, and one
that takes ``data_dir=`` (the slurm executor: its detached runs' job directories) mer's
data directory.
"""

from __future__ import annotations

import importlib
import inspect

from mer.domain import WorkerInfo
from mer.errors import ExecutorNotFound
from mer.execution.interface import Executor, ExecutorFactory

__all__ = ["ENTRY_POINT_GROUP", "ExecutorRegistry"]

ENTRY_POINT_GROUP = "mer.executors"
_BUILTIN = {"local": "mer.execution.local:LocalExecutor", "ssh": "mer.execution.ssh:SshExecutor",
            "container": "mer.execution.container:ContainerExecutor",
            "slurm": "mer.execution.slurm:SlurmExecutor"}


def _accepts(factory: ExecutorFactory, name: str) -> bool:
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # a builtin or C callable: only the documented kwargs
        return False
    # NOTE: not **kwargs, which may hand it on to a base class that refuses it.
    return any(p.name == name for p in params)


def _load(target: str) -> ExecutorFactory:
    module, _, attr = target.partition(":")
    factory: ExecutorFactory = getattr(importlib.import_module(module), attr)
    return factory


class ExecutorRegistry:
    def __init__(self, known_hosts: str | None = None, output_cap: int = 1 << 20,
                 ssh_config: str | None = None, data_dir: str | None = None) -> None:
        self.known_hosts = known_hosts
        self.ssh_config = ssh_config
        self.data_dir = data_dir
        self.output_cap = output_cap
        self._factories: dict[str, ExecutorFactory | str] = dict(_BUILTIN)
        self._instances: dict[str, Executor] = {}
        self._plugins_loaded = False

    def register(self, kind: str, factory: ExecutorFactory) -> None:
        self._factories[kind] = factory
        self._instances.pop(kind, None)

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        from importlib.metadata import entry_points  # ~15 ms: only when a plugin kind is asked

        for ep in entry_points(group=ENTRY_POINT_GROUP):
            self._factories.setdefault(ep.name, ep.value)

    def kinds(self) -> list[str]:
        self._load_plugins()
        return sorted(self._factories)

    def get(self, kind: str) -> Executor:
        if kind in self._instances:
            return self._instances[kind]
        if kind not in self._factories:
            self._load_plugins()
        factory = self._factories.get(kind)
        if factory is None:
            raise ExecutorNotFound(
                f"no executor for server kind '{kind}'; known kinds: {', '.join(self.kinds())}"
            )
        if isinstance(factory, str):
            factory = _load(factory)
        # NOTE: plugins written to the documented factory(known_hosts=, output_cap=) keep
        # working; only a factory that asks for ssh_config= gets it.
        extra = {name: value for name, value in (("ssh_config", self.ssh_config),
                                                  ("data_dir", self.data_dir))
                 if _accepts(factory, name)}
        executor = factory(known_hosts=self.known_hosts, output_cap=self.output_cap, **extra)
        self._instances[kind] = executor
        return executor

    def workers(self) -> list[WorkerInfo]:
        return [w for ex in self._instances.values() for w in ex.workers()]

    async def close(self) -> None:
        for executor in list(self._instances.values()):
            await executor.close()
        self._instances.clear()
