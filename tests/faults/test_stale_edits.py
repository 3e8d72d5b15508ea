"""No lost update: an edit made from a stale view (another shell changed the thing since
this shell showed it) is refused with a conflict, and the other shell's edit survives.
Two in-process shells on one database, SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.faults.shell_harness import InProcessShell

CONFLICT = "was changed by someone else since you read it"


def _ok(done) -> str:  # noqa: ANN001
    assert not done.failed and done.err == "", done.err
    return done.out


def _conflict(done) -> str:  # noqa: ANN001
    assert done.failed and done.exit_code == 1
    lines = done.err.splitlines()
    assert len(lines) == 1 and CONFLICT in lines[0], done.err
    return lines[0]


def _show(shell: InProcessShell, ref: str) -> dict:
    return json.loads(_ok(shell(f"show {ref} --json")))


@pytest.mark.parametrize("stale_edit", ["param linear set bias 9", "param linear unset bias"])
def test_a_stale_parameter_edit_is_refused(shells, stale_edit: str) -> None:
    a, b = shells
    _show(a, "linear")
    _show(b, "linear")
    _ok(a("param linear set bias 1.5"))
    line = _conflict(b(stale_edit))
    assert line.startswith("error: ") and "reload with `show linear@1` and retry" in line
    assert _show(a, "linear")["parameters"] == {"bias": 1.5}  # A's edit survives
    _show(b, "linear")  # B reloads: now its edit goes through
    _ok(b(stale_edit))


def test_a_stale_parameter_edit_of_another_key_is_refused_too(shells) -> None:
    a, b = shells
    _show(a, "linear")
    _show(b, "linear")
    _ok(a("param linear set layers [4]"))
    _conflict(b("param linear set bias 2"))
    assert _show(a, "linear")["parameters"] == {"bias": 0.5, "layers": [4]}


def test_parameter_edits_in_a_row_from_one_shell_go_through(shells) -> None:
    a, _ = shells
    _show(a, "linear")
    _ok(a("param linear set bias 1"))
    _ok(a("param linear set bias 2"))
    _ok(a("param linear unset bias"))


def test_a_parameter_edit_by_a_shell_that_never_looked_is_not_checked(shells) -> None:
    a, b = shells
    _show(a, "linear")
    _ok(b("param linear set bias 3"))  # B never showed linear: nothing to compare with
    _conflict(a("param linear set bias 4"))


@pytest.mark.parametrize("source", ["values", "file"])
def test_a_stale_whole_vector_is_refused(shells, tmp_path: Path, source: str) -> None:
    a, b = shells
    _show(a, "linear")
    _show(b, "linear")
    _ok(a("weights set linear w --values 1,1,1"))
    (tmp_path / "w.json").write_text("[2, 2, 2]")
    arg = "--values 2,2,2" if source == "values" else f"--file {tmp_path / 'w.json'}"
    line = _conflict(b(f"weights set linear w {arg}"))
    assert "weight vector 'w' of model 'linear@1'" in line
    assert "you saw revision 1, it is now 2" in line
    current = json.loads(_ok(a("weights linear w --json")))
    assert current["revision"] == 2 and current["values"] == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("look", ["weights linear", "weights linear w", "weights linear w --history"])
def test_every_view_of_a_vector_is_what_an_edit_is_checked_against(shells, look: str) -> None:
    a, b = shells
    _ok(b(look))
    _ok(a("weights set linear w --values 1,1,1"))
    _conflict(b("weights set linear w --values 2,2,2"))
    _ok(b(look))  # reloaded
    assert "revision 3" in _ok(b("weights set linear w --values 2,2,2"))


def test_stale_element_edit_and_rollback_are_refused(shells) -> None:
    a, b = shells
    _show(b, "linear")
    _ok(a("weights set linear w[0]=7"))
    _conflict(b("weights set linear w[1]=8"))
    _conflict(b("weights rollback linear w 1"))
    assert json.loads(_ok(a("weights linear w --json")))["values"] == [7.0, 2.0, -1.0]


def test_a_vector_created_since_the_shell_listed_none_is_not_overwritten(shells) -> None:
    a, b = shells
    _show(b, "echo")  # echo has no weight vectors
    _ok(a("weights set echo v --values 1,2"))
    line = _conflict(b("weights set echo v --values 3,4"))
    assert "you saw revision 0, it is now 1" in line


def test_weight_edits_in_a_row_from_one_shell_go_through(shells) -> None:
    a, _ = shells
    _show(a, "linear")
    _ok(a("weights set linear w --values 1,1,1"))
    _ok(a("weights set linear w[0]=2"))
    _ok(a("weights rollback linear w 1"))
    _ok(a("weights set echo v --values 1"))  # a new vector of a model shown without it


def test_a_script_that_never_looked_is_not_checked(shells) -> None:
    a, b = shells
    _ok(a("weights set linear w --values 1,1,1"))
    assert "revision 3" in _ok(b("weights set linear w --values 2,2,2"))
