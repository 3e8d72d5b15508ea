"""Nothing in a stored command, environment or parameter becomes an option or code:
the services, the catalog loader and --param refuse it with one line naming the field,
and the executors refuse it again (locally, in bash and dash, over a real sshd)."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mer.db.catalog import load_catalog
from mer.domain import ModelConfig, RunRequest, Server
from mer.errors import ConfigError, ExecutionError, UsageError
from mer.execution.local import LocalExecutor
from mer.execution.registry import ExecutorRegistry
from mer.execution.ssh import SshExecutor, build_remote_command
from mer.services import models as model_svc
from mer.services import runs as run_svc
from mer.services import servers as server_svc
from mer.services.context import ServiceContext


def _dash_command(canary: Path) -> tuple[list[str], dict[str, str]]:
    """bash's `exec -a x touch F` runs touch."""
    return ["-a", "x", "touch", str(canary)], {}


def _env_key(canary: Path) -> tuple[list[str], dict[str, str]]:
    """GNU `env '-Stouch F #=x' true` runs touch."""
    return ["true"], {f"-Stouch {canary} #": "x"}


INJECTIONS = {"dash-command": _dash_command, "env-key": _env_key}


def _request(command: list[str], env: dict[str, str]) -> RunRequest:
    return RunRequest("evil", "1", command, {}, env=env)


# -- the executors: defense in depth ------------------------------------------------------

@pytest.mark.parametrize("shell", ["bash", "dash"])
@pytest.mark.parametrize("make", INJECTIONS.values(), ids=INJECTIONS.keys())
def test_remote_command_line_gives_no_options_to_exec_or_env(shell: str, make: Any, tmp_path: Path) -> None:
    """The line sshd hands to the login shell, run by a real bash and dash."""
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    canary = tmp_path / "canary"
    command, env = make(canary)
    with pytest.raises(ExecutionError, match="starts with '-'|not a variable name"):
        line = build_remote_command(_request(command, env), command)
        subprocess.run([shell, "-c", line], capture_output=True, timeout=30)
    assert not canary.exists()


@pytest.mark.ssh
@pytest.mark.parametrize("make", INJECTIONS.values(), ids=INJECTIONS.keys())
async def test_ssh_executor_refuses_injections(sshd_server, shared_dir: Path, make: Any) -> None:
    canary = shared_dir / "canary"
    command, env = make(canary)
    ex = SshExecutor()
    try:
        with pytest.raises(ExecutionError, match=r"^cannot start evil@1: (command|env): [^\n]*$"):
            await ex.run(_request(command, env), sshd_server.server)
    finally:
        await ex.close()
    assert not canary.exists()


@pytest.mark.parametrize(("command", "env", "field"), [
    (["python3", "-c", "print(1)\0"], {}, "command: argument 3 contains a NUL byte"),
    (["true"], {"A": "x\0y"}, "env.A: contains a NUL byte"),
    (["true"], {"A=B": "x"}, "env: key 'A=B' is not a variable name"),
])
async def test_local_executor_refuses_with_one_line(command: list[str], env: dict[str, str],
                                                    field: str) -> None:
    ex = LocalExecutor()
    try:
        with pytest.raises(ExecutionError) as info:
            await ex.run(_request(command, env), Server(name="local"))
    finally:
        await ex.close()
    assert field in str(info.value) and "\n" not in str(info.value)


# -- the services -------------------------------------------------------------------------

@pytest.fixture
async def ctx(uow_factory: Any) -> ServiceContext:
    c = ServiceContext(uow=uow_factory, executors=ExecutorRegistry(), allow_edit=True, actor="tester")
    await server_svc.add_server(c, Server(name="local"))
    await model_svc.add_model(c, ModelConfig(name="ok", server="local", command=["true"]))
    return c


MODEL_CASES = [
    ({"command": ["-a", "x", "touch", "F"]}, "command: the program '-a' starts with '-'"),
    ({"train_command": ["-x"]}, "train_command: the program '-x' starts with '-'"),
    ({"command": ["touch", "a\0b"]}, "command: argument 2 contains a NUL byte; remove it"),
    ({"command": ["echo", "a\nb"]}, "command: argument 2 contains a newline; remove it"),
    ({"env": {"-Stouch F": "x"}}, "env: key '-Stouch F' is not a variable name"),
    ({"env": {"1A": "x"}}, "env: key '1A' is not a variable name"),
    ({"env": {"A": "x\ny"}}, "env.A: contains a newline; remove it"),
    ({"name": "a\0b"}, "name: contains a NUL byte; remove it"),
    ({"workdir": "/tmp\n"}, "workdir: contains a newline; remove it"),
]


@pytest.mark.parametrize(("change", "message"), MODEL_CASES)
async def test_add_model_refuses_naming_the_field(ctx: ServiceContext, change: dict[str, Any],
                                                  message: str) -> None:
    model = dataclasses.replace(ModelConfig(name="m", server="local", command=["true"]), **change)
    with pytest.raises(UsageError) as info:
        await model_svc.add_model(ctx, model)
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("command", "-a x touch F", "command: the program '-a' starts with '-'"),
    ("train_command", "--help", "train_command: the program '--help' starts with '-'"),
    ("env", '{"-Stouch F": "x"}', "env: key '-Stouch F' is not a variable name"),
    ("env", '{"A": "x\\u0000"}', "env.A: contains a NUL byte"),
])
async def test_set_model_field_refuses_naming_the_field(ctx: ServiceContext, field: str, value: str,
                                                        message: str) -> None:
    with pytest.raises(UsageError, match="^" + message.replace("(", r"\(")):
        await model_svc.set_model_field(ctx, "ok", field, value)


@pytest.mark.parametrize(("change", "message"), [
    ({"host": "h\nx"}, "host: contains a newline; remove it"),
    ({"user": "u\0"}, "user: contains a NUL byte; remove it"),
    ({"host": "-oProxyCommand=touch F"}, "host '-oProxyCommand=touch F' must not start with '-'"),
    ({"identity_file": "/k\0"}, "identity_file: contains a NUL byte"),
    ({"name": "s\n"}, "name: contains a newline"),
])
async def test_add_server_refuses_naming_the_field(ctx: ServiceContext, change: dict[str, Any],
                                                   message: str) -> None:
    server = dataclasses.replace(Server(name="s", kind="ssh", host="h"), **change)
    with pytest.raises(UsageError) as info:
        await server_svc.add_server(ctx, server)
    assert message in str(info.value)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("a\0", "1", "parameters: key 'a\\x00' contains a NUL byte"),
    ("a", '{"b": ["x", "y\\n"]}', "parameters.a.b[1]: contains a newline"),
    ("a", '{"k\\u0000": 1}', "parameters.a: key 'k\\x00' contains a NUL byte"),
])
async def test_parameters_refuse_nul_and_newline_at_any_depth(ctx: ServiceContext, key: str, value: str,
                                                              message: str) -> None:
    with pytest.raises(UsageError) as info:
        await model_svc.set_param(ctx, "ok", key, value)
    assert message in str(info.value)
    with pytest.raises(UsageError) as info:
        run_svc.parse_param_overrides([f"{key}={value}"])
    assert message in str(info.value)


async def test_run_time_params_are_checked_and_nothing_runs(ctx: ServiceContext) -> None:
    with pytest.raises(UsageError, match=r"parameters.p: contains a NUL byte"):
        await run_svc.run_model(ctx, "ok", params={"p": "x\0"})
    assert await run_svc.list_runs(ctx) == []


async def test_a_stored_hostile_command_is_refused_at_run_time(ctx: ServiceContext, uow_factory: Any,
                                                               tmp_path: Path) -> None:
    """A row written before these rules (straight through the repository) never runs."""
    canary = tmp_path / "canary"
    async with uow_factory() as uow:
        await uow.models.add(ModelConfig(name="old", server="local", command=["touch", str(canary), "\n"]))
        await uow.commit()
    with pytest.raises(UsageError, match="command: argument 3 contains a newline"):
        await run_svc.run_model(ctx, "old")
    assert not canary.exists()


# -- the catalog loader --------------------------------------------------------------------

CATALOG = """
[[servers]]
name = "local"
kind = "local"

[[models]]
name = "m"
server = "local"
command = ["true"]
"""


@pytest.mark.parametrize(("old", "new", "message"), [
    ('command = ["true"]', 'command = ["-a", "x", "touch", "F"]', "command: the program '-a' starts with '-'"),
    ('command = ["true"]', 'command = ["true"]\nenv = { "-Stouch F" = "x" }', "env: key '-Stouch F' is not a variable name"),
    ('command = ["true"]', 'command = ["touch", "a\\u0000"]', "command: argument 2 contains a NUL byte"),
    ('command = ["true"]', 'command = ["true"]\nparameters = { a = ["x\\n"] }', "parameters.a[0]: contains a newline"),
    ('kind = "local"', 'kind = "ssh"\nhost = "h\\u0000"', "host: contains a NUL byte"),
    ('name = "m"', 'name = "m x"', "must be non-empty, without spaces"),
])
async def test_catalog_uses_the_same_rules(tmp_path: Path, uow_factory: Any, old: str, new: str,
                                           message: str) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(CATALOG.replace(old, new))
    with pytest.raises(ConfigError) as info:
        await load_catalog(path, uow_factory)
    assert str(path) in str(info.value) and message in str(info.value)
    assert "\n" not in str(info.value)
    async with uow_factory() as uow:
        assert await uow.models.list() == []


async def test_executors_still_run_a_quoted_newline() -> None:
    """Newlines are a service rule; an executor runs a multi-line `python3 -c` program."""
    ex = LocalExecutor()
    try:
        result = await ex.run(_request(["python3", "-c", "x = 1\nprint(x)"], {}), Server(name="local"))
    finally:
        await ex.close()
    assert result.ok and result.stdout == "1\n"
