"""The mer shell in-process on fakes (cmd2's own test pattern): a MerShell whose services
run on an in-memory unit of work and a fake executor, driven by onecmd_plus_hooks with
its output captured. For command logic; what needs a process (signals, pipes, a pty,
real servers) is tested through the real `mer`."""

from __future__ import annotations

import asyncio
import contextlib
import io
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from mer.domain import ModelConfig, Server
from mer.services import models as model_svc
from mer.services import servers as server_svc
from mer.services import weights as weight_svc
from mer.services.context import ServiceContext
from mer.shell.app import MerShell
from mer.shell.bridge import InlineBridge
from tests.fakes import FakeExecutor, FakeRegistry, FakeStore, FakeUnitOfWork


@dataclass
class Done:
    out: str
    err: str
    failed: bool
    exit_code: int


def run_line(shell: MerShell, stdout: io.StringIO, line: str) -> Done:
    """One command as a script runs it, with this command's output and status only."""
    shell.failed, shell.exit_code = False, 0
    stdout.seek(0)
    stdout.truncate()
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        shell.onecmd_plus_hooks(line)
    return Done(stdout.getvalue(), err.getvalue(), shell.failed, shell.exit_code)


@dataclass
class FakeRuntime:
    ctx: ServiceContext

    def close(self) -> Any:
        return None


@dataclass
class ShellOnFakes:
    allow_edit: bool = False
    json_output: bool = False
    store: FakeStore = field(default_factory=FakeStore)
    executor: FakeExecutor = field(default_factory=FakeExecutor)
    stdin: str = ""

    def __post_init__(self) -> None:
        self.ctx = ServiceContext(uow=lambda: FakeUnitOfWork(self.store),
                                  executors=FakeRegistry(self.executor),
                                  allow_edit=self.allow_edit, actor="tester")
        self.bridge = InlineBridge()
        started: Future[FakeRuntime] = Future()
        started.set_result(FakeRuntime(self.ctx))
        self.stdout = io.StringIO()
        self.shell = MerShell(lambda: started, self.bridge,  # type: ignore[arg-type,return-value]
                              json_output=self.json_output, allow_edit=self.allow_edit,
                              stdin=io.StringIO(self.stdin), stdout=self.stdout)

    def seed(self) -> ShellOnFakes:
        """One local server; `lin` (a weight vector `w`, a parameter `bias`) and `echo`."""
        edit = ServiceContext(uow=self.ctx.uow, executors=self.ctx.executors, allow_edit=True,
                              actor="seed")

        async def seed() -> None:
            await server_svc.add_server(edit, Server(name="local"))
            await model_svc.add_model(edit, ModelConfig(name="lin", server="local",
                                                        command=["python3", "lin.py"]))
            await model_svc.add_model(edit, ModelConfig(name="echo", server="local",
                                                        command=["cat"]))
            await weight_svc.set_weights(edit, "lin", "w", [1.0, 2.0, 3.0])
            await model_svc.set_param(edit, "lin", "bias", "0.5")

        self.bridge.call(seed())
        return self

    def __call__(self, line: str) -> Done:
        return run_line(self.shell, self.stdout, line)

    def close(self) -> None:
        self.bridge.close(None)
        asyncio.set_event_loop(None)
