"""`weights set|remove` and `train --save` in-process on fakes: what a script must say
with a flag (--new, --resize, --yes), what a terminal asks instead, values that change
nothing, and weights that a training run returns."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mer.domain import RunResult, RunStatus
from mer.services import models as model_svc
from mer.services import weights as weight_svc
from mer.services.context import ServiceContext
from mer.shell import confirm
from tests.shell.harness import ShellOnFakes


@pytest.fixture
def sh() -> Iterator[ShellOnFakes]:
    shell = ShellOnFakes(allow_edit=True).seed()
    yield shell
    shell.close()


def _stored(sh: ShellOnFakes) -> tuple[int, int]:
    """Weight revisions and audit rows: what a refused edit must leave as it was."""
    return len(sh.store.weights), len(sh.store.audit)


def _revisions(sh: ShellOnFakes, name: str = "w") -> list[dict]:
    return json.loads(sh(f"weights history lin {name} --json").out)


class Terminal:
    """A person at the terminal: answers each question in turn, and keeps them."""

    def __init__(self, sh: ShellOnFakes, monkeypatch: pytest.MonkeyPatch, *answers: str | None) -> None:
        self.answers, self.questions = list(answers), []
        monkeypatch.setattr(confirm, "person_present", lambda shell: True)
        monkeypatch.setattr(sh.shell, "read_input", self.read)

    def read(self, prompt: str, **_: object) -> str:
        self.questions.append(prompt)
        answer = self.answers.pop(0)
        if answer is None:
            raise EOFError  # Ctrl-D
        return answer


# -- values that change nothing ---------------------------------------------------------

def test_equal_values_store_no_revision_and_say_so(sh: ShellOnFakes) -> None:
    before = _stored(sh)
    done = sh("weights set lin w --values 1,2,3")
    assert not done.failed and done.out == "w: unchanged (revision 1)\n"
    assert _stored(sh) == before
    image = json.loads(sh("weights set lin w --values 1.0,2,3 --json").out)
    assert image["unchanged"] is True and image["revision"] == 1
    assert json.loads(sh("weights set lin w[0]=7 --json").out)["unchanged"] is False


# -- scripts say what they mean with a flag ---------------------------------------------

@pytest.mark.parametrize(("line", "message"), [
    ("weights set lin W --values 1,2,3",
     "error: model 'lin@1' has no weight vector 'W' (it has w); add --new to create it"),
    ("weights set lin w --values 1,2",
     "error: weight vector 'w' of model 'lin@1' has 3 values, the new one 2; add --resize to change its length"),
    ("weights remove lin w",
     "error: removing weight vector 'w' of lin@1 (3 values, 1 revision) needs --yes"),
])
def test_a_script_without_the_flag_gets_one_line_and_nothing_is_stored(sh: ShellOnFakes, line: str,
                                                                       message: str) -> None:
    before = _stored(sh)
    done = sh(line)
    assert done.failed and done.exit_code == 2
    assert done.err == message + "\n" and done.out == ""
    assert _stored(sh) == before


def test_with_the_flag_a_script_goes_through(sh: ShellOnFakes) -> None:
    assert sh("weights set lin W --values 1 --new").out.startswith("W: revision 1 (1 values")
    assert sh("weights set lin w --values 1,2 --resize").out.startswith("w: revision 2 (2 values")
    assert json.loads(sh("weights remove lin W --yes --json").out) == {
        "removed": "W", "model": "lin", "revision": 1}
    assert [w["name"] for w in json.loads(sh("weights lin --json").out)] == ["w"]
    assert sh.store.audit[-1].action == "weights.remove"


def test_a_removed_vector_is_no_longer_sent_to_the_model(sh: ShellOnFakes) -> None:
    assert sh("weights remove lin w --yes").out == "w: removed (it was at revision 1)\n"
    assert not sh("run lin --data 1").failed
    assert json.loads(str(sh.executor.requests[-1].payload["weights"])) == {}
    assert sh("weights lin").out == "no weight vectors\n"


def test_column_picks_from_a_file_only(sh: ShellOnFakes, tmp_path: Path) -> None:
    (tmp_path / "w.csv").write_text("a,b,c\n1,10,0\n2,20,0\n3,30,0\n")
    done = sh(f"weights set lin w --file {tmp_path / 'w.csv'}")
    assert done.err == f"error: {tmp_path / 'w.csv'}: 3 numeric columns (a, b, c); pick one with --column NAME\n"
    assert sh(f"weights set lin w --file {tmp_path / 'w.csv'} --column b").out.startswith("w: revision 2")
    assert json.loads(sh("weights lin w --json").out)["values"] == [10.0, 20.0, 30.0]
    done = sh("weights set lin w --values 1,2,3 --column b")
    assert done.failed and "--column picks from a --file" in done.err


# -- a person at the terminal is asked instead ------------------------------------------

@pytest.mark.parametrize(("line", "question"), [
    ("weights set lin W --values 1", "create a new weight vector 'W' of lin@1 (it has w)? [y/N] "),
    ("weights set lin w --values 1,2", "change the length of 'w' of lin@1 from 3 to 2? [y/N] "),
    ("weights remove lin w", "remove weight vector 'w' of lin@1 (3 values, 1 revision)? [y/N] "),
])
@pytest.mark.parametrize("answer", ["y", "yes", "n", "", None])
def test_a_terminal_asks_yes_or_no(sh: ShellOnFakes, monkeypatch: pytest.MonkeyPatch, line: str,
                                   question: str, answer: str | None) -> None:
    person = Terminal(sh, monkeypatch, answer)
    before = _stored(sh)
    done = sh(line)
    assert person.questions == [question] and not done.failed, done.err
    if answer in ("y", "yes"):
        assert _stored(sh) != before
    else:
        assert done.out == "nothing changed\n" and _stored(sh) == before


def test_a_flag_given_is_not_asked_again(sh: ShellOnFakes, monkeypatch: pytest.MonkeyPatch) -> None:
    person = Terminal(sh, monkeypatch)
    assert not sh("weights set lin w --values 1,2 --resize").failed
    assert not sh("weights remove lin w --yes").failed
    assert person.questions == []


def test_a_yes_is_checked_against_what_the_question_showed(sh: ShellOnFakes,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    other = ServiceContext(uow=sh.ctx.uow, executors=sh.ctx.executors, allow_edit=True, actor="other")

    def meanwhile(prompt: str, **_: object) -> str:
        sh.bridge.call(weight_svc.set_weights(other, "lin", "w", [7.0, 8.0, 9.0]))
        return "y"

    monkeypatch.setattr(confirm, "person_present", lambda shell: True)
    monkeypatch.setattr(sh.shell, "read_input", meanwhile)
    done = sh("weights set lin w --values 1,2")
    assert done.failed and "you saw revision 1, it is now 2" in done.err
    assert [r["revision"] for r in _revisions(sh)] == [1, 2]


def test_the_first_vector_of_a_model_needs_no_new(sh: ShellOnFakes) -> None:
    assert not sh("weights set echo v --values 1,2").failed


def test_remove_is_a_verb_of_weights(sh: ShellOnFakes) -> None:
    assert "remove" in sh("help weights").out
    assert "(needs --allow-edit)" in sh("help weights").out


# -- train ------------------------------------------------------------------------------

@pytest.fixture
def trainer(sh: ShellOnFakes) -> ShellOnFakes:
    edit = ServiceContext(uow=sh.ctx.uow, executors=sh.ctx.executors, allow_edit=True, actor="seed")
    sh.bridge.call(model_svc.set_model_field(edit, "lin", "train_command", "python3 train.py"))
    sh.executor.result = RunResult(status=RunStatus.SUCCEEDED, exit_code=0,
                                   result={"weights": {"w": [0.5, 1.5, 2.5]}, "loss": 0.25})
    return sh


def test_train_without_save_stores_nothing_and_says_how(trainer: ShellOnFakes) -> None:
    before = _stored(trainer)
    done = trainer("train lin --data 1")
    assert not done.failed and done.out == ""
    assert done.err.endswith("; 1 weight vector in the result; rerun with --save to store it\n")
    assert _stored(trainer) == before
    trainer.executor.result.result = {"weights": {"w": [1.0], "b": [2.0]}}
    assert trainer("train lin").err.endswith("; 2 weight vectors in the result; rerun with --save to store them\n")
    trainer.executor.result.result = {"loss": 1}
    assert "rerun with --save" not in trainer("train lin").err


def test_train_save_stores_revisions_linked_to_the_run(trainer: ShellOnFakes) -> None:
    done = trainer("train lin --save")
    assert not done.failed, done.err
    assert done.out.startswith("w: revision 2 (3 values, sha256 ")
    run_id = json.loads(trainer("runs --json").out)[0]["id"]
    assert [r["run_id"] for r in _revisions(trainer)] == [None, run_id]
    table = trainer("weights history lin w").out
    assert "RUN" in table.splitlines()[0] and run_id[:8] in table.splitlines()[2]
    assert "trained by run " + run_id[:8] in table


def test_train_save_under_json_is_one_object(trainer: ShellOnFakes) -> None:
    done = trainer("train lin --save --json")
    assert done.out.count("\n") == 1
    image = json.loads(done.out)
    assert image["status"] == "succeeded" and image["result"]["loss"] == 0.25
    [saved] = image["saved"]
    assert saved["name"] == "w" and saved["revision"] == 2 and saved["run_id"] == image["id"]
    assert saved["unchanged"] is False


def test_train_save_needs_allow_edit_before_it_runs(trainer: ShellOnFakes) -> None:
    trainer.shell.allow_edit = False
    done = trainer("train lin --save")
    assert done.failed and done.err == "error: editing is disabled: start mer with --allow-edit\n"
    assert trainer.executor.requests == []


def test_train_save_obeys_the_flags_and_keeps_the_run_report(trainer: ShellOnFakes) -> None:
    trainer.executor.result.result = {"weights": {"w": [1.0, 2.0]}}
    before = _stored(trainer)
    done = trainer("train lin --save")
    assert done.failed and done.exit_code == 2
    summary, error = done.err.splitlines()
    assert summary.startswith("lin@1 succeeded")
    assert error == ("error: weight vector 'w' of model 'lin@1' has 3 values, the new one 2; "
                     "add --resize to change its length")
    assert _stored(trainer) == before
    image = json.loads(trainer("train lin --save --json").out)
    assert image["saved"] == [] and "add --resize" in image["save_error"]
    assert trainer("train lin --save --resize").out.startswith("w: revision 2 (2 values")


def test_train_save_asks_in_a_terminal(trainer: ShellOnFakes, monkeypatch: pytest.MonkeyPatch) -> None:
    trainer.executor.result.result = {"weights": {"w": [1.0, 2.0], "b": [3.0]}}
    person = Terminal(trainer, monkeypatch, "y", "y")
    done = trainer("train lin --save")
    assert not done.failed, done.err
    assert person.questions == ["create a new weight vector 'b' of lin@1 (it has w)? [y/N] ",
                                "change the length of 'w' of lin@1 from 3 to 2? [y/N] "]
    assert done.out.splitlines()[0].startswith("b: revision 1") and "w: revision 2" in done.out


def test_a_failed_training_stores_nothing(trainer: ShellOnFakes) -> None:
    trainer.executor.result.status, trainer.executor.result.exit_code = RunStatus.FAILED, 1
    before = _stored(trainer)
    done = trainer("train lin --save")
    assert done.failed and "failed (exit 1)" in done.err and "rerun" not in done.err
    assert _stored(trainer) == before


def test_new_and_resize_go_with_save(trainer: ShellOnFakes) -> None:
    done = trainer("train lin --resize")
    assert done.failed and done.err == "error: --new and --resize go with --save\n"
    assert trainer.executor.requests == []
