"""`model alias|unalias`, aliases in `models` and `show`, `model add --from`, the alias in
a run's summary and `runs show`, and Tab after `m@`: in-process on fakes."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from mer.shell.completion import build_cache
from tests.shell.harness import ShellOnFakes
from tests.shell.test_completion import tab


@pytest.fixture
def sh() -> Iterator[ShellOnFakes]:
    """`lin@1` (weight w, parameter bias), `lin@2` copied from it, `echo`; lin@live -> 1."""
    shell = ShellOnFakes(allow_edit=True).seed()
    assert shell("model add lin@2 --from lin@1").err == ""
    assert shell("model alias lin live 1").err == ""
    yield shell
    shell.close()


def _ok(done) -> str:  # noqa: ANN001
    assert not done.failed and done.err == "", done.err
    return done.out


def test_alias_prints_what_it_did_and_json_is_one_line(sh: ShellOnFakes) -> None:
    assert _ok(sh("model alias lin live 2")) == "lin@live -> lin@2 (was lin@1)\n"
    assert _ok(sh("model alias lin live 2")) == "lin@live -> lin@2 (unchanged)\n"
    out = _ok(sh("model alias lin prod live --json"))
    assert out.count("\n") == 1
    assert json.loads(out) == {"model": "lin", "alias": "prod", "version": "2", "before": None,
                               "unchanged": False}
    assert json.loads(_ok(sh("model unalias lin prod --json"))) == {"removed": "lin@prod",
                                                                    "version": "2"}
    assert _ok(sh("model unalias lin live")) == "removed lin@live (it named lin@2)\n"
    assert sh.store.aliases == {}


def test_models_and_show_list_the_aliases(sh: ShellOnFakes) -> None:
    table = _ok(sh("models")).splitlines()
    assert table[0].split()[:3] == ["MODEL", "VERSION", "ALIASES"]
    assert [line.split()[:3] for line in table if line.startswith("lin ")] == [
        ["lin", "1", "live"], ["lin", "2", "local"]]  # lin@2 has none: its server follows
    images = {m["name"] + "@" + m["version"]: m["aliases"] for m in json.loads(_ok(sh("models --json")))}
    assert images == {"echo@1": [], "lin@1": ["live"], "lin@2": []}
    shown = _ok(sh("show lin@live"))
    assert shown.startswith("lin@1  (enabled)") and "  aliases:      lin@live\n" in shown
    assert json.loads(_ok(sh("show lin@live --json")))["aliases"] == ["live"]
    assert "aliases:" not in _ok(sh("show lin@2"))


def test_a_run_by_alias_says_so_and_runs_show_keeps_it(sh: ShellOnFakes) -> None:
    done = sh("run lin@live")
    assert done.err.startswith("lin@1 (lin@live) succeeded"), done.err
    image = json.loads(_ok(sh("run lin@live --json")))
    assert (image["version"], image["alias"]) == ("1", "live")
    record = _ok(sh(f"runs show {image['id'][:8]}"))
    assert "\nalias:            live\n" in record and "\nversion:          1\n" in record
    plain = json.loads(_ok(sh("run lin --json")))
    assert (plain["version"], plain["alias"]) == ("2", None)  # the newest enabled version


@pytest.mark.parametrize(("line", "message", "code"), [
    ("model alias lin 2 1", "error: alias '2' must start with a letter", 2),
    ("model alias lin live 9", "error: model 'lin@9' not found", 1),
    ("model alias lin@1 live 1", "error: give the model's name without @VERSION", 2),
    ("model unalias lin prod", "error: model 'lin' has no alias 'prod'; see `model show lin`", 1),
    ("model remove lin@1 --yes", "error: 'lin@1' is lin@live; move the alias", 2),
    ("model add lin@3 --from lin@7", "error: model 'lin@7' not found", 1),
    ("model add lin@2 --from lin@1", "error: model 'lin@2' already exists", 1),
    ("model add lin@live --from lin@1", "error: 'lin@live' is an alias of lin@1", 1),
    ("model add x", "error: model add: the following arguments are required: --server", 2),
])
def test_bad_alias_and_copy_commands_are_one_line(sh: ShellOnFakes, line: str, message: str,
                                                  code: int) -> None:
    stored = (len(sh.store.models), dict(sh.store.aliases), len(sh.store.audit))
    done = sh(line)
    assert done.failed and done.exit_code == code and done.out == ""
    assert len(done.err.splitlines()) == 1 and done.err.startswith(message), done.err
    assert (len(sh.store.models), dict(sh.store.aliases), len(sh.store.audit)) == stored


def test_alias_verbs_are_edits() -> None:
    ro = ShellOnFakes().seed()
    try:
        for line in ("model alias lin live 1", "model unalias lin live",
                     "model add lin@2 --from lin@1"):
            done = ro(line)
            assert done.failed and "editing is disabled" in done.err
        assert "alias" in ro("help model").out and ro.store.aliases == {}
    finally:
        ro.close()


def test_add_from_copies_and_takes_flags_as_changes(sh: ShellOnFakes) -> None:
    out = _ok(sh("model add lin --from lin@live --timeout 5 --description copy"))
    assert out == "added lin@3 from lin@1 (parameters: bias; weights: w)\n"
    image = json.loads(_ok(sh("show lin@3 --json")))
    assert (image["timeout"], image["description"], image["command"]) == (5.0, "copy",
                                                                          ["python3", "lin.py"])
    assert image["parameters"] == {"bias": 0.5} and image["weights"][0]["revision"] == 1
    made = json.loads(_ok(sh("model add lin@4 --from lin@1 --json")))
    assert made["from"] == "lin@1" and made["weights"][0]["note"] == "copied from lin@1 rev 1"


def test_tab_offers_aliases_after_the_at(sh: ShellOnFakes) -> None:
    sh.shell.cache = sh.bridge.call(build_cache(sh.ctx))
    assert tab(sh, "run lin@") == ["lin@1", "lin@2", "lin@live"]
    assert tab(sh, "show lin@l") == ["lin@live"]
    assert tab(sh, "model alias lin live ") == ["1", "2", "live"]
    assert tab(sh, "model unalias lin ") == ["live"]
