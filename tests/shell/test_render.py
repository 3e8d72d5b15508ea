"""Tables for people: fitted to a terminal's width with an ellipsis and coloured
statuses (render.fit, pure); plain and uncoloured when the output is not a terminal."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from cmd2.string_utils import strip_style

from mer.shell import render
from tests.shell.harness import ShellOnFakes

ESC = "\x1b["
GREEN, RED, YELLOW, CYAN = "\x1b[32m", "\x1b[31m", "\x1b[33m", "\x1b[36m"

RUNS = render.Table(["run", "model", "status", "description"], [
    ["1c7a0000", "linear@1", "succeeded", "y = w . x + bias, computed with its weight vector w"],
    ["2d8b0000", "echo@1", "failed", None],
    ["3e9c0000", "slow@1", "cancelled", "short"],
    ["4fad0000", "slow@1", "running", "short"],
    ["5abe0000", "slow@1", "timeout", "short"],
])


def test_a_fitted_table_is_at_most_the_width_and_long_cells_end_in_an_ellipsis() -> None:
    text = render.fit(RUNS, 50, colour=False)
    lines = text.splitlines()
    assert all(len(line) <= 50 for line in lines), text
    assert lines[0].startswith("RUN       MODEL     STATUS     DESCRIPTION")
    assert lines[1].endswith("…") and "y = w . x" in lines[1]
    # The short columns stay whole: the widest column gives way.
    assert lines[1].startswith("1c7a0000  linear@1  succeeded  ")
    assert ESC not in text


def test_a_table_that_fits_is_drawn_as_the_plain_one() -> None:
    assert render.fit(RUNS, 200, colour=False) == RUNS.plain()


def test_statuses_and_enabled_are_coloured() -> None:
    text = render.fit(RUNS, 60, colour=True)
    assert f"{GREEN}succeeded" in text and f"{RED}failed" in text
    assert f"{YELLOW}cancelled" in text and f"{CYAN}running" in text and f"{RED}timeout" in text
    assert strip_style(text) == render.fit(RUNS, 60, colour=False)
    enabled = render.fit(render.Table(["model", "enabled"], [["a", "yes"], ["b", "no"]]), 40, True)
    assert f"{GREEN}yes" in enabled and f"{RED}no" in enabled


def test_a_status_word_elsewhere_is_not_coloured() -> None:
    text = render.fit(render.Table(["model", "description"], [["m", "failed"]]), 40, True)
    assert f"{RED}failed" not in text


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def sh() -> Iterator[ShellOnFakes]:
    shell = ShellOnFakes().seed()
    yield shell
    shell.close()


@pytest.mark.parametrize("line", ["models", "servers", "runs", "settings"])
def test_not_a_terminal_the_tables_are_plain(sh: ShellOnFakes, line: str) -> None:
    sh("run lin")
    done = sh(line)
    assert not done.failed, done.err
    assert ESC not in done.out and "…" not in done.out
    assert done.out.splitlines()[0] == done.out.splitlines()[0].rstrip()


def test_on_a_terminal_a_table_fits_its_width(sh: ShellOnFakes,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "40")  # what shutil.get_terminal_size reads first
    monkeypatch.setenv("LINES", "50")
    sh.stdout = sh.shell.stdout = Terminal()
    done = sh("models")
    assert not done.failed, done.err
    assert f"{GREEN}yes" in done.out
    assert all(len(line) <= 40 for line in strip_style(done.out).splitlines())
    assert "…" in done.out  # MODEL VERSION SERVER MODE ENABLED DESCRIPTION: 53 columns


def test_interactively_output_longer_than_the_screen_goes_through_the_pager(
        sh: ShellOnFakes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("LINES", "3")
    paged: list[str] = []
    monkeypatch.setattr(sh.shell, "ppaged", lambda text, end: paged.append(text))
    sh.stdout = sh.shell.stdout = Terminal()
    monkeypatch.setattr(sh.bridge, "background", True)  # as when interactive
    assert sh("servers").out and not paged  # two lines
    assert not sh("models").out and paged and "lin" in paged[0]  # three lines
    paged.clear()
    monkeypatch.setattr(sh.bridge, "background", False)  # a script: never a pager
    assert "lin" in sh("models").out and not paged
