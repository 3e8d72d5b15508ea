"""The real `mer` process on a pty (pexpect) and under signals. In this process: a script
on PostgreSQL and over SSH (mer's entry point), two shells on one database (as `mer`
builds its shell)."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pexpect
import pytest

from tests.processes import owned_by
from tests.shell.conftest import BIN, Mer

PROMPT = "mer>"  # prompt_toolkit draws the trailing space with cursor moves


def _spawn(mer: Mer, *args: str) -> pexpect.spawn:
    env = {**mer.env, "PROMPT_TOOLKIT_NO_CPR": "1"}  # pexpect answers no cursor queries
    child = pexpect.spawn(str(BIN / "mer"), list(args), env=env, encoding="utf-8",
                          timeout=30, dimensions=(40, 200))
    child.expect_exact(PROMPT)
    return child


def test_pty_prompt_completion_and_ctrl_c(mer: Mer) -> None:
    child = _spawn(mer)
    try:
        child.sendline("refresh")  # the background refresh may still be running: be sure
        child.expect_exact(PROMPT)
        child.send("show line\t")
        child.expect("linear")
        child.send("\x15")  # clear the line
        child.sendline("run slow --data '{\"seconds\": 60}'")
        child.expect("tick 1")
        assert owned_by(child.pid)  # the model runs (what is checked gone below)
        child.sendintr()
        child.expect("cancelled")
        child.expect_exact(PROMPT)
        child.sendline("runs --json --limit 1")
        child.expect(r"\[\{.*\}\]")
        record = json.loads(child.after)[0]
        assert record["model"] == "slow" and record["status"] == "cancelled"
        assert record["finished_at"] is not None
        assert not owned_by(child.pid)  # the model was killed
        child.sendline("quit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_mid_run_cancels_it_and_completes_the_access_log_row(mer: Mer, signum: int) -> None:
    proc = mer.popen("-c", "run slow --data '{\"seconds\": 60}'", "-c", "models",
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "tick 1" in line
    assert owned_by(proc.pid)  # the model runs (what is checked gone below)
    proc.send_signal(signum)
    assert proc.wait(timeout=30) == 128 + signum
    assert "echo" not in proc.stdout.read()  # the script's next command never ran
    record = json.loads(mer.main("--json", "-c", "runs --limit 1").stdout)[0]
    assert record["status"] == "cancelled" and record["finished_at"]
    assert not owned_by(proc.pid)  # the model was killed


def test_an_ignored_hangup_stays_ignored(mer: Mer) -> None:
    """`nohup mer < job.mer &`: the job outlives the terminal that started it."""
    proc = mer.popen("-c", "run slow --data '{\"seconds\": 1.5}'", stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE,
                     preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    assert proc.stdout is not None and proc.stderr is not None
    assert "tick 1" in proc.stdout.readline()
    proc.send_signal(signal.SIGHUP)
    assert proc.wait(timeout=30) == 0
    assert proc.stderr.read().startswith("slow@1 succeeded")


def test_a_signal_between_commands_ends_a_piped_script(mer: Mer) -> None:
    proc = mer.popen(stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("run echo --data 1\n")
    proc.stdin.flush()
    assert proc.stdout.readline()  # the run ended; mer now waits for the next line
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    proc.stdin.close()


def test_two_shells_see_each_others_edits_and_conflicts(mer: Mer) -> None:
    a, other = mer.shell(allow_edit=True), mer.shell(allow_edit=True)
    try:
        seen = json.loads(a("show echo --json").out)
        assert seen["row_version"] == 1
        done = other("set echo description changed-elsewhere")
        assert not done.failed, done.err
        stale = a("set echo timeout 3")  # A saw version 1: stale
        assert stale.failed and stale.exit_code == 1
        assert "was changed by someone else since you read it" in stale.err
        fresh = json.loads(a("show echo --json").out)
        assert fresh["description"] == "changed-elsewhere" and fresh["row_version"] == 2
        done = a("set echo timeout 3")  # after reloading, the edit goes through
        assert not done.failed and "row version 3" in done.out
        assert json.loads(other("show echo --json").out)["timeout"] == 3
    finally:
        a.close()
        other.close()


def test_a_shell_runs_what_another_shell_just_changed(mer: Mer) -> None:
    """Runs cache what they read of the catalog; an edit anywhere must end that."""
    a, other = mer.shell(json=True), mer.shell(allow_edit=True)

    def run_echo() -> dict:
        return json.loads(a("run echo --data 1").out)

    try:
        first = run_echo()
        assert first["status"] == "succeeded" and first["result"]["echo"]["parameters"] == {}
        assert first["weight_revisions"] == {}
        edits = [("param echo set greeting hi", lambda r: r["result"]["echo"]["parameters"] == {"greeting": "hi"}),
                 ("weights set echo w --values 1,2", lambda r: r["weight_revisions"] == {"w": 1}
                  and r["result"]["echo"]["weights"] == {"w": [1.0, 2.0]}),
                 ("set echo command false", lambda r: r["status"] == "failed" and r["exit_code"] == 1)]
        for edit, seen in edits:
            done = other(edit)
            assert not done.failed, done.err
            record = run_echo()
            assert seen(record), (edit, record)
    finally:
        a.close()
        other.close()


@pytest.mark.postgres
def test_shell_on_postgres(tmp_path: Path, pg_url: str) -> None:
    import asyncio

    from tests.fixtures_pg import _reset_pg

    asyncio.run(_reset_pg(pg_url))
    mer = Mer(tmp_path, database_url=pg_url)
    done = mer.main("--allow-edit", stdin="run linear --data '{\"x\": [1, 1, 1]}'\n"
                                          "param linear set bias 1.5\nshow linear --json\n")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["parameters"] == {"bias": 1.5}
    runs = json.loads(mer.main("--json", "-c", "runs").stdout)
    assert runs[0]["status"] == "succeeded" and runs[0]["result"] == {"y": 2.0}


@pytest.mark.ssh
def test_run_over_ssh_through_the_shell(mer: Mer, sshd_server) -> None:
    s = sshd_server.server
    models = Path(__file__).resolve().parents[2] / "examples" / "models"
    script = (
        f"server add box --kind ssh --host {s.host} --port {s.port} --user {s.user} "
        f"--identity {s.identity_file} --known-hosts {s.known_hosts}\n"
        f"ping box\n"
        f"model add remote-echo --server box --command \"python3 {models / 'echo.py'}\"\n"
        "run remote-echo --data '\"over ssh\"'\n"
    )
    done = mer.main("--allow-edit", stdin=script)
    assert done.returncode == 0, done.stderr
    assert "box: reachable; host key known" in done.stdout
    assert '"input": "over ssh"' in done.stdout
    record = json.loads(mer.main("--json", "-c", "runs --limit 1").stdout)[0]
    assert record["server"] == "box" and record["status"] == "succeeded"


def test_model_remove_asks_in_a_terminal_and_needs_yes_in_a_script(mer: Mer) -> None:
    child = _spawn(mer, "--allow-edit")
    try:
        child.sendline("model remove echo")
        child.expect_exact("remove echo with its parameters, weights and their history? [y/N]")
        child.sendline("n")
        child.expect_exact("nothing removed")
        child.sendline("model remove echo")
        child.expect_exact("[y/N]")
        child.sendline("y")
        child.expect_exact("removed echo@1")
        child.sendline("quit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    done = mer.main("--allow-edit", "-c", "model remove linear")
    assert done.returncode == 1
    assert done.stderr.strip() == ("error: remove linear with its parameters, weights and their "
                                   "history: in a script, add --yes to confirm")
    assert "linear" in mer.main("-c", "models").stdout
    assert mer.main("--allow-edit", "-c", "model remove linear --yes").returncode == 0
