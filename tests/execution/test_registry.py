"""The executor registry: built-in kinds, errors, plugins by code and by entry point."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mer.errors import ExecutorNotFound
from mer.execution.local import LocalExecutor
from mer.execution.registry import ExecutorRegistry


class _Plugin(LocalExecutor):
    kind = "plugin"


def test_builtin_kinds_and_cached_instances() -> None:
    reg = ExecutorRegistry(output_cap=123)
    assert {"local", "ssh"} <= set(reg.kinds())
    local = reg.get("local")
    assert isinstance(local, LocalExecutor) and local.output_cap == 123
    assert reg.get("local") is local


def test_unknown_kind_names_the_known_ones() -> None:
    with pytest.raises(ExecutorNotFound, match="no executor for server kind 'gpu'.*local.*ssh"):
        ExecutorRegistry().get("gpu")


def test_plugin_registered_in_code() -> None:
    reg = ExecutorRegistry()
    reg.register("plugin", _Plugin)
    assert isinstance(reg.get("plugin"), _Plugin) and "plugin" in reg.kinds()


def test_plugin_through_an_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "merplugin_demo.py"
    pkg.write_text("from mer.execution.local import LocalExecutor\n"
                   "class DemoExecutor(LocalExecutor):\n    kind = 'demo'\n")
    dist = tmp_path / "merplugin_demo-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: merplugin-demo\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[mer.executors]\ndemo = merplugin_demo:DemoExecutor\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = ExecutorRegistry()
    executor = reg.get("demo")
    assert type(executor).__name__ == "DemoExecutor" and "demo" in reg.kinds()
    sys.modules.pop("merplugin_demo", None)


async def test_local_check_reports_latency() -> None:
    from mer.domain import Server

    check = await LocalExecutor().check(Server(name="here"))
    assert check.reachable and check.latency_ms is not None and check.host_key_known is None


def test_only_a_factory_that_takes_ssh_config_gets_it(tmp_path: Path) -> None:
    """The ssh executor reads the OpenSSH client config; a plugin written to the documented
    factory(known_hosts=, output_cap=) is still built."""
    reg = ExecutorRegistry(ssh_config=str(tmp_path / "ssh_config"))
    assert reg.get("ssh").ssh_config.path == tmp_path / "ssh_config"  # type: ignore[attr-defined]

    def plugin(*, known_hosts: str | None = None, output_cap: int = 1 << 20) -> _Plugin:
        return _Plugin(known_hosts=known_hosts, output_cap=output_cap)

    reg.register("plugin", plugin)
    assert isinstance(reg.get("plugin"), _Plugin)
