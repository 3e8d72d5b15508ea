"""Catalog loading: idempotent, updates in place, new weight revisions only on change,
and a malformed file names the problem and writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from mer.db.catalog import load_catalog
from mer.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

BASE = """
[[servers]]
name = "local"
kind = "local"

[[models]]
name = "lin"
version = "1"
server = "local"
command = ["python3", "${CATALOG_DIR}/lin.py"]
timeout = 5
[models.parameters]
bias = 0.5
[models.weights]
w = [1.0, 2.0]
"""


async def _counts(uow_factory) -> tuple[int, int, list[int], dict]:
    async with uow_factory() as uow:
        models = await uow.models.list()
        servers = await uow.servers.list()
        revs = []
        params = {}
        for m in models:
            revs += [h.revision for name in await uow.weights.names(m.id)
                     for h in await uow.weights.history(m.id, name)]
            params[m.ref] = (await uow.parameters.get(m.id)).values
    return len(servers), len(models), revs, params


async def test_example_catalog_loads_idempotently(uow_factory) -> None:
    catalog = ROOT / "examples" / "catalog.toml"
    first = await load_catalog(catalog, uow_factory)
    assert first.added["models"] >= 7 and first.weight_revisions == 2
    before = await _counts(uow_factory)
    again = await load_catalog(catalog, uow_factory)
    assert again.added == {"servers": 0, "models": 0} and again.weight_revisions == 0
    assert await _counts(uow_factory) == before
    async with uow_factory() as uow:
        echo = await uow.models.get("echo")
    assert echo.command[1] == str(ROOT / "examples" / "models" / "echo.py")


async def test_changed_file_updates_rows_and_adds_revision_only_on_change(tmp_path, uow_factory) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(BASE)
    await load_catalog(path, uow_factory)
    slower = BASE.replace("timeout = 5", "timeout = 9")
    path.write_text(slower)
    report = await load_catalog(path, uow_factory)
    assert report.updated["models"] == 1 and report.weight_revisions == 0
    path.write_text(slower.replace("w = [1.0, 2.0]", "w = [1.0, 3.0]").replace("bias = 0.5", "bias = 1"))
    report = await load_catalog(path, uow_factory)
    assert report.weight_revisions == 1 and report.updated["parameters"] == 1
    async with uow_factory() as uow:
        model = await uow.models.get("lin")
        assert model.timeout == 9 and model.row_version == 2
        assert model.command == ["python3", f"{tmp_path}/lin.py"]
        latest = await uow.weights.get(model.id, "w")
        assert latest.revision == 2 and latest.values.tolist() == [1.0, 3.0]
        assert (await uow.parameters.get(model.id)).values == {"bias": 1}
        audit = await uow.audit.query()
    assert {a.action for a in audit} >= {"model.add", "model.update", "weights.set"}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[[models]\nname=", "not valid TOML"),
        (BASE.replace('kind = "local"', 'kind = "local"\ncolour = "red"'), "servers[0] 'local': unknown key 'colour'"),
        (BASE.replace("w = [1.0, 2.0]", "w = [1.0, nan]"), "models[0] 'lin@1': weights.w: element 1 is nan"),
        (BASE.replace("timeout = 5", 'timeout = "soon"'), "models[0] 'lin@1': timeout must be int"),
        (BASE.replace('server = "local"', 'server = "mars"'), "server 'mars' not found"),
        (BASE + BASE.split("[[models]]", 1)[1].join(["[[models]]", ""]), "listed twice"),
        (BASE.replace('command = ["python3", "${CATALOG_DIR}/lin.py"]', "command = []"), "non-empty list"),
        (BASE.replace('version = "1"', 'version = "1"\nmode = "forever"'), "mode must be one of"),
    ],
)
async def test_malformed_catalog_names_the_problem_and_writes_nothing(
    tmp_path, uow_factory, text: str, needle: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        await load_catalog(path, uow_factory)
    assert str(path) in str(info.value) and needle in str(info.value)
    assert await _counts(uow_factory) == (0, 0, [], {})
