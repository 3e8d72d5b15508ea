"""`audit` and `show MODEL --history`: every edit with who, when, what, before, after."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.shell.harness import ShellOnFakes


@pytest.fixture
def sh() -> Iterator[ShellOnFakes]:
    shell = ShellOnFakes(allow_edit=True).seed()
    yield shell
    shell.close()


def test_audit_lists_every_edit_with_before_and_after(sh: ShellOnFakes) -> None:
    sh("model set lin timeout 60")
    sh("param set lin bias 2")
    sh("param unset lin bias")
    sh("weights set lin w --values 7,8,9")
    entries = json.loads(sh("audit lin --json").out)
    assert [e["action"] for e in entries][:4] == ["weights.set", "param.unset", "param.set",
                                                  "model.set.timeout"]
    assert all(e["user"] == "tester" for e in entries[:4])
    text = sh("audit lin").out
    assert "timeout: - -> 60" in text
    assert "bias: 2 -> -" in text and "bias: 0.5 -> 2" in text
    assert "echo" not in text  # only lin's edits


def test_audit_filters_by_user_and_time(sh: ShellOnFakes) -> None:
    sh("model set echo description x")
    assert json.loads(sh("audit --user tester --json").out)[0]["target"] == "model echo@1"
    assert json.loads(sh("audit --user nobody --json").out) == []
    assert json.loads(sh("audit --since 1h --json").out)  # the seed and the edit
    done = sh("audit --since yesterday")
    assert done.failed and "--since 'yesterday' is not a time" in done.err


def test_show_history_lists_the_models_field_and_parameter_changes(sh: ShellOnFakes) -> None:
    sh("model set lin description first")
    sh("model set lin description second")
    sh("param set lin lr 0.1")
    sh("weights set lin w --values 1 --resize")
    history = json.loads(sh("show lin --history --json").out)
    assert [h["action"] for h in history] == ["param.set", "model.set.description",
                                             "model.set.description", "param.set", "model.add"]
    assert "description: first -> second" in sh("show lin --history").out
