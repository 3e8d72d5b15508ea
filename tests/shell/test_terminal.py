"""The real `mer` on a terminal (pexpect): Tab offers each model once, a table is
coloured, a silent run shows a spinner that is gone before the summary."""

from __future__ import annotations

import re

import pexpect

from tests.shell.conftest import BIN, Mer

PROMPT = "mer>"


def test_on_a_terminal_tab_offers_a_model_once_and_a_silent_run_spins(mer: Mer) -> None:
    env = {**mer.env, "PROMPT_TOOLKIT_NO_CPR": "1"}  # pexpect answers no cursor queries
    child = pexpect.spawn(str(BIN / "mer"), ["--allow-edit"], env=env, encoding="utf-8",
                          timeout=30, dimensions=(40, 120))
    try:
        child.expect_exact(PROMPT)
        child.sendline("refresh")  # the background refresh may still be running: be sure
        child.expect_exact(PROMPT)

        child.send("run sl\t")  # one model, one candidate: completed at once, with a space
        child.expect_exact("ow")  # completion runs in a thread: wait for it before typing on
        child.sendline("--data '{\"seconds\": 0}'")
        child.expect_exact("slow@1 succeeded")
        child.expect_exact(PROMPT)
        child.send("run li\t")  # linear and linear-worker, not their versions
        child.expect("linear-worker")
        child.expect(pexpect.TIMEOUT, timeout=0.5)  # the rest of the menu
        assert "@1" not in child.before
        child.send("\x15")

        child.sendline("models")
        child.expect_exact("\x1b[32myes")  # coloured on a terminal

        child.sendline("model add quiet --server local "
                       "--command \"python3 -c 'import time; time.sleep(0.5)'\"")
        child.expect_exact("added quiet@1")
        child.sendline("run quiet")
        child.expect(r"\r⠋ \d\.\d s")
        child.expect(r"quiet@1 succeeded[^\r\n]*")
        assert child.before.endswith("\r\x1b[K"), repr(child.before)  # cleared first
        child.expect_exact(PROMPT)
        child.sendline("quit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert not re.search(r"Traceback|internal error", child.before or "")
