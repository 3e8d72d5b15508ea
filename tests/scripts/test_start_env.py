"""start_mer.sh and stop_mer.sh as an operator runs them (issue 11): they read .env with
mer's own reader (quotes, inline comments), a restart never undoes an admin's live edits
(the catalog is loaded only into a new database), the operator is told how to run mer
again, and a shell's pid file is gone when the shell exits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from dotenv import dotenv_values

from tests.scripts.test_start_stop import ROOT, VENV, _env

TRICKY = """\
# a comment line
PLAIN=1 # an inline comment
QUOTED="two words"   # and a comment after the quotes
SINGLE='$(touch {pwned}) stays text'
export EXPORTED=yes
ESCAPED="line\\nnext"
EXPANDED=${{PLAIN}}-x
HASH="a # inside quotes"
FROM_ENV=from-dotenv
"""


def test_the_scripts_read_dotenv_exactly_as_mer_does(tmp_path: Path) -> None:
    dotenv = tmp_path / "my.env"
    dotenv.write_text(TRICKY.format(pwned=tmp_path / "pwned"))
    env = {**os.environ, "MER_ENV_FILE": str(dotenv), "FROM_ENV": "from-environment"}
    keys = ["PLAIN", "QUOTED", "SINGLE", "EXPORTED", "ESCAPED", "EXPANDED", "HASH", "FROM_ENV"]
    show = f"import json, os; print(json.dumps({{k: os.environ[k] for k in {keys!r}}}))"
    done = subprocess.run(
        ["bash", "-c", f'eval "$("{sys.executable}" -m mer.config --export)" && "{sys.executable}" -c "$0"',
         show], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    expected = {k: v for k, v in dotenv_values(dotenv).items() if k in keys}
    expected["FROM_ENV"] = "from-environment"  # the environment wins over .env, as in mer
    assert seen == expected
    assert seen["QUOTED"] == "two words" and seen["HASH"] == "a # inside quotes"
    assert not (tmp_path / "pwned").exists()


def test_a_restart_keeps_admin_edits_and_shells_leave_no_pid_files(tmp_path: Path) -> None:
    data, run = tmp_path / "data dir", tmp_path / "run dir"
    dotenv = tmp_path / "my.env"
    dotenv.write_text(
        f'MER_DATA_DIR="{data}"   # quoted, with a space, and a comment\n'
        f"MER_CATALOG='{ROOT}/examples/catalog.toml' # single-quoted\n"
        f'MER_RUN_DIR="{run}"\n'
    )
    env = _env(tmp_path, MER_ENV_FILE=str(dotenv))
    for key in ("MER_DATA_DIR", "MER_CATALOG", "MER_RUN_DIR"):
        del env[key]  # from .env only
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if Path(p) != VENV / "bin")

    def start(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([str(ROOT / "start_mer.sh"), *args], env=env, capture_output=True,
                              text=True, timeout=300, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stderr
        return done

    first = start("--allow-edit", "-c", "param set linear bias 7", "-c", "model disable crash")
    assert (data / "mer.db").exists()
    venv = env["MER_VENV"]
    assert f"{venv}/bin/mer" in first.stderr and f"source {venv}/bin/activate" in first.stderr
    assert list((run / "shells").glob("*.pid")) == []  # the shell removed its own at exit

    again = start("--json", "-c", "show linear", "-c", "show crash")
    linear, crash = (json.loads(line) for line in again.stdout.splitlines())
    assert linear["parameters"] == {"bias": 7} and crash["enabled"] is False
    assert "not loaded into an existing database" in again.stderr
    assert list((run / "shells").glob("*.pid")) == []

    # stop_mer.sh reads the same .env: it finds MER_RUN_DIR there, and a pid file that a
    # killed shell left (its pid no longer a mer) is removed without touching that process.
    stale = run / "shells" / "1.pid"
    stale.write_text(f"{os.getpid()}\n")
    stop = subprocess.run([str(ROOT / "stop_mer.sh")], env=env, capture_output=True, text=True,
                          timeout=60)
    assert stop.returncode == 0 and "stopped 0 shell(s)" in stop.stderr, stop.stderr
    assert not stale.exists()
