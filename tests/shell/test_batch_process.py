"""A batch in the real `mer` on a terminal (pexpect): the progress bar, and Ctrl-C
(SIGINT from the terminal) cancelling every run in flight, each recorded cancelled, and
starting no more."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pexpect

from tests.processes import owned_by
from tests.shell.conftest import BIN, Mer

PROMPT = "mer>"


def _models(mer_pid: int) -> list[str]:
    """The slow models that mer runs, once started (``python3`` may be a shim script
    that execs the interpreter: those are not counted)."""
    found = []
    for pid in owned_by(mer_pid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if Path(argv[0].decode()).name.startswith("python") and any(a.endswith(b"slow.py") for a in argv):
            found.append(" ".join(a.decode() for a in argv))
    return found


def test_ctrl_c_cancels_a_batch_in_flight_on_a_terminal(mer: Mer, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    env = {**mer.env, "PROMPT_TOOLKIT_NO_CPR": "1", "TERM": "xterm"}
    child = pexpect.spawn(str(BIN / "mer"), [], env=env, encoding="utf-8", timeout=30,
                          dimensions=(40, 200))
    try:
        child.expect_exact(PROMPT)
        child.sendline(f"run slow --data '{{\"seconds\": 60}}' --sweep x=1,2,3 --parallel 2 --out {out}")
        child.expect(r"0/3\S* 0 failed, 2 running")  # the progress bar
        for _ in range(300):  # until both models run (bounded: a hang fails the test)
            if len(_models(child.pid)) >= 2:
                break
            time.sleep(0.05)
        assert len(_models(child.pid)) == 2  # --parallel 2: the third waits
        child.sendintr()
        child.expect("cancelled")
        child.expect_exact(PROMPT)
        lines = [json.loads(line) for line in out.read_text().splitlines()]
        assert [line["status"] for line in lines] == ["cancelled", "cancelled", "skipped"]
        child.sendline(f"runs --batch {lines[0]['batch_id'][:8]} --json")
        child.expect(r"\[\{.*\}\]")
        rows = json.loads(child.after)
        assert sorted(r["id"] for r in rows) == sorted(line["run_id"] for line in lines[:2])
        assert all(r["status"] == "cancelled" and r["finished_at"] for r in rows)
        assert not owned_by(child.pid)  # both models were killed
        child.sendline("quit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
