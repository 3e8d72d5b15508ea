"""Weights as a person or a script meets them through `mer`: a script's one-line refusals
and exit status, a bad file, and `train --save` with the example linear model's real
training command (mer's entry point in this process); a terminal's yes/no (the real
`mer` on a pty)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pexpect

from tests.shell.conftest import BIN, Mer

PROMPT = "mer>"
SAMPLES = '{"samples": [[1, 0, 0, 2], [0, 1, 0, 1]], "rate": 0.1}'


def _values(mer: Mer) -> list[float]:
    return json.loads(mer.main("--json", "-c", "weights linear w").stdout)["values"]


def test_a_script_must_name_the_flag_and_stores_nothing(mer: Mer, tmp_path: Path) -> None:
    for line, flag in [("weights set linear w --values 1,2", "--resize"),
                       ("weights set linear W --values 1,2,3", "--new"),
                       ("weights remove linear w", "--yes")]:
        done = mer.main("--allow-edit", "-c", line)
        assert done.returncode == 1 and done.stdout == ""
        assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ") and flag in done.stderr
    assert _values(mer) == [0.5, 2.0, -1.0]
    assert len(json.loads(mer.main("--json", "-c", "weights history linear w").stdout)) == 1


def test_a_truncated_npy_is_refused_with_one_line(mer: Mer, tmp_path: Path) -> None:
    np.save(tmp_path / "w.npy", np.array([1.0, 2.0, 3.0]))
    (tmp_path / "cut.npy").write_bytes((tmp_path / "w.npy").read_bytes()[:-8])
    done = mer.main("--allow-edit", "-c", f"weights set linear w --file {tmp_path / 'cut.npy'}")
    assert done.returncode == 1
    assert done.stderr == (f"error: {tmp_path / 'cut.npy'}: truncated: its header says 3 values "
                           "(24 bytes of data), the file holds 16\n")
    assert _values(mer) == [0.5, 2.0, -1.0]
    done = mer.main("--allow-edit", "-c", f"weights set linear w --file {tmp_path / 'w.npy'}",
               "-c", f"weights set linear w --file {tmp_path / 'w.npy'}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1] == "w: unchanged (revision 2)"


def test_train_save_stores_what_the_training_returned(mer: Mer) -> None:
    done = mer.main("-c", f"train linear --data '{SAMPLES}'")
    assert done.returncode == 0, done.stderr
    assert "epoch 5" in done.stdout
    assert done.stderr.rstrip().endswith("; 1 weight vector in the result; rerun with --save to store it")
    assert _values(mer) == [0.5, 2.0, -1.0]
    done = mer.main("--allow-edit", "--json", "-c", f"train linear --data '{SAMPLES}' --save")
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    trained = run["result"]["weights"]["w"]
    assert run["saved"][0]["revision"] == 2 and _values(mer) == trained != [0.5, 2.0, -1.0]
    history = json.loads(mer.main("--json", "-c", "weights history linear w").stdout)
    assert [h["run_id"] for h in history] == [None, run["id"]]
    table = mer.main("-c", "weights history linear w").stdout
    assert run["id"][:8] in table


def test_a_terminal_asks_before_removing(mer: Mer) -> None:
    env = {**mer.env, "PROMPT_TOOLKIT_NO_CPR": "1"}
    child = pexpect.spawn(str(BIN / "mer"), ["--allow-edit"], env=env, encoding="utf-8",
                          timeout=30, dimensions=(40, 200))
    try:
        child.expect_exact(PROMPT)
        child.sendline("weights remove linear w")
        child.expect_exact("remove weight vector 'w' of linear@1 (3 values, 1 revision)? [y/N]")
        child.sendline("n")
        child.expect_exact("nothing changed")
        child.expect_exact(PROMPT)
        child.sendline("weights set linear w --values 1,2")
        child.expect_exact("change the length of 'w' of linear@1 from 3 to 2? [y/N]")
        child.sendline("y")
        child.expect_exact("w: revision 2 (2 values")
        child.expect_exact(PROMPT)
        child.sendline("quit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert _values(mer) == [1.0, 2.0]
