"""The spinner of a silent run: drawn on a terminal while the model says nothing, cleared
before its first output, never in a script or under --json. In-process on fakes; the
real terminal is tests/shell/test_terminal.py."""

from __future__ import annotations

import asyncio
import io
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from mer.shell import spinner as spinner_mod
from mer.shell.spinner import Spinner
from tests.fakes import FakeExecutor
from tests.shell.harness import ShellOnFakes

CLEAR = "\r\x1b[K"


def test_it_draws_the_elapsed_time_and_clears_its_line_when_stopped() -> None:
    out = io.StringIO()
    with Spinner(out):
        time.sleep(0.35)
    drawn = out.getvalue()
    assert re.match(r"\r⠋ 0\.\d s\r⠙ 0\.\d s", drawn) and drawn.endswith(CLEAR), repr(drawn)
    time.sleep(0.25)
    assert out.getvalue() == drawn  # nothing after it stopped


def test_a_run_quicker_than_a_frame_leaves_nothing() -> None:
    out = io.StringIO()
    with Spinner(out):
        pass
    assert out.getvalue() == ""


class SilentThenTalks(FakeExecutor):
    """Says nothing for a while, then one line on stdout and one on stderr."""

    async def run(self, request, server, sinks=None):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.35)
        sinks.stderr(b"model speaks\n")
        await asyncio.sleep(0.25)  # time for a frame, were the spinner still there
        sinks.stdout(b"{}\n")
        return await super().run(request, server, sinks)


@pytest.fixture
def sh() -> Iterator[ShellOnFakes]:
    shell = ShellOnFakes(executor=SilentThenTalks()).seed()
    yield shell
    shell.close()


def watched(sh: ShellOnFakes, monkeypatch: pytest.MonkeyPatch) -> None:
    """As when interactive on a terminal."""
    monkeypatch.setattr(sh.shell, "watched", lambda stream: True)


def test_a_silent_run_spins_until_the_model_speaks(sh: ShellOnFakes,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    watched(sh, monkeypatch)
    done = sh("run lin")
    assert not done.failed, done.err
    before, _, after = done.err.partition(CLEAR)
    assert re.fullmatch(r"(\r. \d\.\d s)+", before) and before.startswith("\r⠋ 0."), repr(before)
    assert after.startswith("model speaks\nlin@1 succeeded")
    assert not any(frame in after for frame in spinner_mod.FRAMES)


def test_an_interrupted_run_clears_the_spinner(sh: ShellOnFakes,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    watched(sh, monkeypatch)
    sh.executor.hang = True

    def interrupt(*_: Any) -> None:
        sh.bridge.interrupt(KeyboardInterrupt())

    sh.bridge.loop.call_later(0.3, interrupt)
    done = sh("run lin")
    assert done.exit_code == 130
    assert done.err.endswith(CLEAR + "cancelled\n"), repr(done.err)


@pytest.mark.parametrize("line", ["run lin --json", "run lin"])
def test_no_spinner_under_json_nor_in_a_script(sh: ShellOnFakes,
                                               monkeypatch: pytest.MonkeyPatch, line: str) -> None:
    if "--json" in line:
        watched(sh, monkeypatch)
    done = sh(line)
    assert not done.failed, done.err
    assert CLEAR not in done.err and not any(f in done.err for f in spinner_mod.FRAMES)
