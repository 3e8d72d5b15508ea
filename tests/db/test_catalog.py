"""Catalog loading: idempotent, and a malformed file names the problem and writes nothing.
What a load leaves alone (admins' edits, removed entries) is in test_catalog_seeds.py."""

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
    assert first.added["models"] >= 7 and first.added["weights"] == 2
    before = await _counts(uow_factory)
    again = await load_catalog(catalog, uow_factory)
    assert set(again.added.values()) == {0} and again.present == first.added["models"] + 1
    assert await _counts(uow_factory) == before
    async with uow_factory() as uow:
        echo = await uow.models.get("echo")
    assert echo.command[1] == str(ROOT / "examples" / "models" / "echo.py")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[[models]\nname=", "not valid TOML"),
        (BASE.replace('kind = "local"', 'kind = "local"\ncolour = "red"'), "servers[0] 'local': unknown key 'colour'"),
        (BASE.replace("w = [1.0, 2.0]", "w = [1.0, nan]"), "models[0] 'lin@1': weights.w: element 1 is nan"),
        (BASE.replace("timeout = 5", 'timeout = "soon"'), "models[0] 'lin@1': timeout must be int"),
        (BASE.replace('server = "local"', 'server = "mars"'), "models[0] 'lin@1': server: no server 'mars'"),
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
