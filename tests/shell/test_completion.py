"""Tab completion in-process (cmd2's own pattern: ``app.complete(text, line, begidx,
endidx)``) on fakes: each model once, its versions after `@`, a model's weight names,
fields and parameter keys, the shorthands completing as their full commands; and the
names read through the services."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mer.domain import ModelConfig
from mer.services import models as model_svc
from mer.services.context import ServiceContext
from mer.services.models import EDITABLE_FIELDS
from mer.services.names import completion_names
from mer.shell.completion import build_cache
from tests.shell.harness import ShellOnFakes


@pytest.fixture
def sh() -> Iterator[ShellOnFakes]:
    """`lin` in versions 1 and 2 (weights `w`, parameter `bias`), `echo`, server `local`."""
    shell = ShellOnFakes().seed()
    edit = ServiceContext(uow=shell.ctx.uow, executors=shell.ctx.executors, allow_edit=True,
                          actor="seed")
    shell.bridge.call(model_svc.add_model(edit, ModelConfig(name="lin", version="2",
                                                            server="local", command=["true"])))
    shell.shell.cache = shell.bridge.call(build_cache(shell.ctx))
    yield shell
    shell.close()


def tab(sh: ShellOnFakes, line: str) -> list[str]:
    """What Tab offers at the end of ``line``."""
    text = line.rsplit(" ", 1)[-1]
    return list(sh.shell.complete(text, line, len(line) - len(text), len(line)).to_strings())


def test_the_names_come_from_the_services(sh: ShellOnFakes) -> None:
    names = sh.bridge.call(completion_names(sh.ctx))
    assert names.models == ("echo", "lin")
    assert names.refs == ("echo@1", "lin@1", "lin@2")
    assert names.servers == ("local",)
    assert names.params["lin"] == ("bias",) and names.weights["lin"] == ("w",)


@pytest.mark.parametrize("line", ["run ", "train ", "stop ", "feed ", "model show ", "show ",
                                  "weights show ", "param set ", "runs list --model "])
def test_each_model_is_offered_once(sh: ShellOnFakes, line: str) -> None:
    assert tab(sh, line) == ["echo", "lin"]


def test_a_prefix_completes_to_the_one_model(sh: ShellOnFakes) -> None:
    assert tab(sh, "run li") == ["lin"]


@pytest.mark.parametrize(("line", "offered"), [("run lin@", ["lin@1", "lin@2"]),
                                               ("run lin@2", ["lin@2"]),
                                               ("weights set lin@", ["lin@1", "lin@2"])])
def test_versions_are_offered_once_the_word_has_an_at(sh: ShellOnFakes, line: str,
                                                       offered: list[str]) -> None:
    assert tab(sh, line) == offered


@pytest.mark.parametrize("line", ["weights set lin ", "weights show lin ", "weights history lin ",
                                  "weights set lin@2 ", "weights lin "])
def test_a_models_weight_names_follow_it(sh: ShellOnFakes, line: str) -> None:
    assert tab(sh, line) == ["w"]


@pytest.mark.parametrize("line", ["model set lin ", "set lin "])
def test_fields_follow_model_set(sh: ShellOnFakes, line: str) -> None:
    assert tab(sh, line) == sorted(EDITABLE_FIELDS)


@pytest.mark.parametrize("line", ["param set lin ", "param unset lin ", "param lin set "])
def test_parameter_keys_follow_param_set(sh: ShellOnFakes, line: str) -> None:
    assert tab(sh, line) == ["bias"]


def test_a_model_without_weights_offers_none(sh: ShellOnFakes) -> None:
    assert tab(sh, "weights set echo ") == []


@pytest.mark.parametrize("command", ["ping", "audit"])
def test_servers_and_models_are_offered_together(sh: ShellOnFakes, command: str) -> None:
    assert tab(sh, f"{command} ") == ["echo", "lin", "local"]
    assert tab(sh, f"{command} l") == ["lin", "local"]
    assert tab(sh, f"{command} lin@") == ["lin@1", "lin@2"]


def test_the_verbs_of_a_noun_are_still_offered(sh: ShellOnFakes) -> None:
    assert tab(sh, "weights s") == ["set", "show"]
