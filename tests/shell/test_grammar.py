"""One grammar (NOUN VERB ARGS) with today's spellings and the Rust MER names as
shorthands, literal `;|>`, one-line errors: in-process on fakes."""

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


@pytest.fixture
def ro() -> Iterator[ShellOnFakes]:
    shell = ShellOnFakes().seed()
    yield shell
    shell.close()


def _model(sh: ShellOnFakes, name: str):  # type: ignore[no-untyped-def]
    return next(m for m in sh.store.models.values() if m.name == name)


@pytest.mark.parametrize("line", ["model list", "model", "models", "ls", "model-list",
                                  "model --server local"])
def test_every_spelling_of_listing_models_lists_them(ro: ShellOnFakes, line: str) -> None:
    done = ro(line)
    assert not done.failed, done.err
    assert "lin" in done.out and "echo" in done.out


@pytest.mark.parametrize("line", ["model show lin", "model lin", "show lin", "model-info lin"])
def test_every_spelling_of_showing_a_model_shows_it(ro: ShellOnFakes, line: str) -> None:
    done = ro(line)
    assert not done.failed, done.err
    assert done.out.startswith("lin@1") and "bias" in done.out


@pytest.mark.parametrize("line", ["model set lin description two words",
                                  "set lin description two words",
                                  "model-modify lin description two words",
                                  "model set lin description 'two words'"])
def test_a_value_may_be_several_words(sh: ShellOnFakes, line: str) -> None:
    sh("show lin")
    done = sh(line)
    assert not done.failed, done.err
    assert _model(sh, "lin").description == "two words"


@pytest.mark.parametrize("value", ["a;b", "a | b", "a>b", "x > y; z", "a|b"])
def test_semicolons_pipes_and_redirects_are_taken_literally(sh: ShellOnFakes, value: str) -> None:
    done = sh(f"model set lin description {value}")
    assert not done.failed, done.err
    assert _model(sh, "lin").description == value


def test_old_and_new_param_spellings_edit_the_same_parameters(sh: ShellOnFakes) -> None:
    assert not sh("param lin set lr 0.01").failed
    assert not sh("param set lin depth 3").failed
    done = sh("param lin --json")
    assert json.loads(done.out)["parameters"] == {"bias": 0.5, "lr": 0.01, "depth": 3}
    assert not sh("param unset lin lr").failed
    assert not sh("param lin unset depth").failed
    assert json.loads(sh("param show lin --json").out)["parameters"] == {"bias": 0.5}


def test_weights_old_and_new_spellings(sh: ShellOnFakes) -> None:
    assert "rev 1" in sh("weights lin w").out
    assert "rev 1" in sh("weights show lin w").out
    assert not sh("weights set lin w --values 4,5,6").failed
    assert not sh("weights set lin w[0]=9").failed
    history = json.loads(sh("weights history lin w --json").out)
    assert [h["revision"] for h in history] == [1, 2, 3]
    assert json.loads(sh("weights lin w --history --json").out) == history
    assert not sh("weights rollback lin w 1").failed
    assert json.loads(sh("weights lin w --json").out)["values"] == [1.0, 2.0, 3.0]


def test_a_model_named_like_a_verb_is_reached_with_the_verb(sh: ShellOnFakes) -> None:
    assert not sh("model add set --server local --command true").failed
    assert not sh("weights set set w --values 1").failed
    assert json.loads(sh("weights show set --json").out)[0]["name"] == "w"


@pytest.mark.parametrize("line", [
    "model add x --server local --command true", "model set lin timeout 5",
    "set lin timeout 5", "model remove lin", "model enable lin", "model disable lin",
    "param set lin k 1", "param lin set k 1", "param unset lin bias",
    "weights set lin w --values 1", "weights rollback lin w 1",
    "server add s2 --kind local", "server remove local", "server trust local",
    "model-create x --server local --command true", "model-delete lin",
    "pipeline add p --step lin", "pipeline remove p",
])
def test_every_edit_is_refused_without_allow_edit(ro: ShellOnFakes, line: str) -> None:
    before = (len(ro.store.models), len(ro.store.weights), len(ro.store.audit),
              _model(ro, "lin").row_version)
    done = ro(line)
    assert done.failed and done.exit_code == 1
    assert done.err.strip() == "error: editing is disabled: start mer with --allow-edit"
    assert (len(ro.store.models), len(ro.store.weights), len(ro.store.audit),
            _model(ro, "lin").row_version) == before


def test_help_lists_commands_by_category_with_edits_marked(ro: ShellOnFakes) -> None:
    out = ro("help").out
    for category in ("Models", "Runs", "Servers", "Shell"):
        assert category in out
    for hidden in ("macro", "shortcuts", "run_script", "Cmd2 Commands"):
        assert hidden not in out
    model_help = ro("help model").out
    assert "set" in model_help and "(needs --allow-edit)" in model_help
    assert "list" in model_help


@pytest.mark.parametrize("alias,expected", [("ls", "model list"), ("show", "model show"),
                                            ("model-execute", "run")])
def test_help_of_an_alias_is_the_help_of_its_command(ro: ShellOnFakes, alias: str, expected: str) -> None:
    done = ro(f"help {alias}")
    assert not done.failed, done.err
    assert f"Usage: {expected}" in done.out


def test_unknown_commands_models_and_servers_suggest_the_close_name(ro: ShellOnFakes) -> None:
    assert "did you mean 'model'" in ro("modle").err
    done = ro("run lni")
    assert done.failed
    assert done.err.strip() == "error: model 'lni' not found (did you mean 'lin'?); see `models`"
    assert "did you mean 'local'" in ro("model list --server locl").err


def test_ping_a_name_that_is_neither_server_nor_model_says_so(ro: ShellOnFakes) -> None:
    done = ro("ping gpu9")
    assert done.failed
    assert done.err.strip() == ("error: no server or model named 'gpu9'; see `servers` and "
                                "`models`")
    assert "local: reachable" in ro("ping lin").out
    assert "local: reachable" in ro("server ping local").out


def test_runs_with_an_id_prefix_shows_that_run(ro: ShellOnFakes) -> None:
    assert not ro("run lin --data hello").failed
    listed = json.loads(ro("runs --json").out)
    run_id = listed[0]["id"]
    assert ro.executor.requests[0].payload["input"] == "hello"  # not JSON: the text itself
    for line in (f"runs {run_id[:4]}", f"runs show {run_id[:6]}"):
        done = ro(line)
        assert not done.failed, done.err
        assert f"id:               {run_id}" in done.out
    shown = ro(f"runs {run_id[:4]}").out
    assert "error:            -" in shown  # missing values print as -


def test_settings_replace_cmd2_set(ro: ShellOnFakes) -> None:
    assert json.loads(ro("settings --json").out)["quiet"] is False
    assert not ro("settings quiet true").failed
    assert json.loads(ro("settings quiet --json").out) == {"quiet": True}
    done = ro("settings colour blue")
    assert done.failed and done.err.strip() == "error: no setting 'colour'; see `settings`"


@pytest.mark.parametrize("line,message", [
    ("model set lin", "error: model set: the following arguments are required: field, value "
                      "(see `help model set`)"),
    ("model frob lin", "error: model: argument VERB: invalid choice: 'frob'"),
    ("runs show", "error: runs show: the following arguments are required: run_id"),
    ("weights", "error: weights: the following arguments are required: VERB"),
])
def test_bad_arguments_are_one_line_naming_the_command(ro: ShellOnFakes, line: str, message: str) -> None:
    done = ro(line)
    assert done.failed and done.exit_code == 2
    assert done.err.startswith(message), done.err
    assert done.err.count("\n") == 1


@pytest.mark.parametrize("line", ["shell ls", "py 1", "ipy", "edit x", "run_pyscript x.py"])
def test_builtins_that_run_arbitrary_code_are_gone(sh: ShellOnFakes, line: str) -> None:
    done = sh(line)
    assert done.failed and done.err.startswith(f"error: unknown command '{line.split()[0]}'")


def test_a_scripts_commands_are_not_kept_in_the_history(ro: ShellOnFakes) -> None:
    """A scheduler's script of a million lines would hold a million statements."""
    from mer.shell.script import numbered, run_script

    run_script(ro.shell, numbered("job.mer", ["models", "servers", "show lin"] * 50), False)
    assert not ro.shell.failed
    assert len(ro.shell.history) == 0
