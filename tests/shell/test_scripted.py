"""`mer` in scripted mode: piped scripts, -c, --script, exit codes, JSON output, the edit
gate, and the access log. `mer.main` runs mer's entry point in this process (flags,
output, exit codes); the real process only where one is the point (a piped stdin, fd 0
shared with a model, a closed output pipe)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.processes import owned_by
from tests.shell.conftest import Mer


def test_piped_script_runs_in_order_without_prompt_and_exit_zero(mer: Mer) -> None:
    script = "# a comment\n\nmodels\nshow echo\nrun echo --data '{\"a\": 1}'\n"
    done = mer(stdin=script)
    assert done.returncode == 0, done.stderr
    assert "mer>" not in done.stdout and "Type help" not in done.stdout
    lines = done.stdout.splitlines()
    assert lines[0].startswith("MODEL") and any(line.startswith("echo@1") for line in lines)
    assert json.loads(lines[-1])["echo"]["input"] == {"a": 1}
    assert "succeeded (exit 0)" in done.stderr


def test_a_failing_command_fails_the_script_but_the_rest_runs(mer: Mer) -> None:
    done = mer.main(stdin="show nope\nservers\n")
    assert done.returncode == 1
    assert done.stderr.strip() == "<stdin>:1: error: model 'nope' not found; see `models`"
    assert "local" in done.stdout


def test_stop_on_error_stops_at_the_first_failure(mer: Mer, tmp_path: Path) -> None:
    script = tmp_path / "job.mer"
    script.write_text("run crash\nservers\n")
    done = mer.main("--script", str(script), "--stop-on-error")
    assert done.returncode == 1 and "SERVER" not in done.stdout
    assert "failed (exit 3)" in done.stderr
    done = mer.main("--script", str(script))
    assert done.returncode == 1 and "SERVER" in done.stdout


@pytest.mark.parametrize(("args", "code"), [
    (["--frobnicate"], 2), (["--script", "/nonexistent.mer"], 2),
    (["-c", "bogus"], 1), (["-c", "runs --limit x"], 1),
    (["-c", "run echo --input /nonexistent.json"], 1), (["-c", "run nope"], 1),
])
def test_exit_codes_and_one_line_errors(mer: Mer, args: list[str], code: int) -> None:
    done = mer.main(*args)
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.strip()


def test_unreachable_database_is_one_clear_line(mer: Mer) -> None:
    done = mer.main("--database-url", "postgresql+asyncpg://postgres@127.0.0.1:1/x", "-c", "models")
    assert done.returncode == 1
    assert "cannot reach the database at postgresql+asyncpg://postgres@127.0.0.1:1/x" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_missing_postgres_database_says_where_mer_tried(mer: Mer, pg_url: str) -> None:
    missing = pg_url.rsplit("/", 1)[0] + "/mer_no_such_database"
    done = mer.main("--database-url", missing, "-c", "models")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f'error: opening the database at {missing} failed: database "mer_no_such_database" '
        f"does not exist"]


def test_a_model_reading_stdin_never_eats_the_script(mer: Mer) -> None:
    eat = "model add eater --server local --command \"python3 -c 'import sys; sys.stdin.read()'\"\n"
    done = mer("--allow-edit", stdin=eat + "run eater\nservers\n")
    assert done.returncode == 0, done.stderr
    assert "local" in done.stdout.splitlines()[-1]


def test_json_outputs_parse(mer: Mer) -> None:
    models = json.loads(mer.main("--json", "-c", "models").stdout)
    assert {m["name"] for m in models} >= {"echo", "linear", "linear-worker"}
    servers = json.loads(mer.main("-c", "servers --json").stdout)
    assert servers[0]["name"] == "local"
    show = json.loads(mer.main("-c", "show linear --json").stdout)
    assert show["parameters"] == {"bias": 0.5} and show["weights"][0]["name"] == "w"
    run = mer.main("--json", "-c", "run linear --data '{\"x\": [1, 1, 1]}'")
    record = json.loads(run.stdout)
    assert record["status"] == "succeeded" and record["result"] == {"y": 2.0}
    assert {"id", "model", "version", "server", "exit_code", "started_at", "finished_at",
            "duration_ms"} <= set(record)
    runs = json.loads(mer.main("--json", "-c", "runs").stdout)
    assert runs[0]["id"] == record["id"]
    one = json.loads(mer.main("--json", "-c", f"runs show {record['id'][:8]}").stdout)
    assert one["stdout"].strip() == '{"y": 2.0}'
    hist = json.loads(mer.main("--json", "-c", "weights linear w --history").stdout)
    assert hist[0]["revision"] == 1 and "values" not in hist[0]


def test_an_edit_is_refused_without_allow_edit(mer: Mer) -> None:
    """Every editing command and spelling is refused in-process on fakes
    (tests/shell/test_grammar.py); here the real `mer` without --allow-edit, on the
    spellings that test does not use: exit 1, nothing changed."""
    done = mer("-c", "model-modify echo timeout 5", "-c", "weights set linear w[0]=3",
               "-c", "weights set echo w --values 1,2", "-c", "show echo --json",
               "-c", "weights linear w --json")
    assert done.returncode == 1
    assert done.stderr.count("editing is disabled: start mer with --allow-edit") == 3
    echo, weights = (json.loads(line) for line in done.stdout.splitlines())
    assert echo["row_version"] == 1 and echo["timeout"] == 30 and echo["weights"] == []
    assert weights["revision"] == 1


def test_edit_through_a_macro_or_alias_is_refused(mer: Mer) -> None:
    done = mer.main(stdin="alias create zap model remove echo\nzap\nmacro create m2 set {1} timeout 9\nm2 echo\n")
    assert done.returncode == 1
    assert done.stderr.count("editing is disabled") == 2
    assert json.loads(mer.main("--json", "-c", "show echo").stdout)["timeout"] == 30


def test_edits_with_allow_edit_are_audited_and_visible(mer: Mer) -> None:
    done = mer.main("--allow-edit", stdin="set echo timeout 7\nparam echo set layers [1,2]\n"
               "weights set echo w --values 0.5,1.5\nweights set echo w[1]=9\n")
    assert done.returncode == 0, done.stderr
    show = json.loads(mer.main("--json", "-c", "show echo").stdout)
    assert show["timeout"] == 7 and show["parameters"] == {"layers": [1, 2]}
    assert show["weights"][0]["revision"] == 2 and show["row_version"] == 2
    values = json.loads(mer.main("--json", "-c", "weights echo w").stdout)["values"]
    assert values == [0.5, 9.0]


def test_worker_model_through_the_shell(mer: Mer) -> None:
    done = mer.main(stdin="run linear-worker --data '{\"x\": [1, 2, 3]}'\n"
                     "run linear-worker --data '{\"x\": [0, 0, 0]}'\nworkers\nstop linear-worker\n")
    assert done.returncode == 0, done.stderr
    assert '"y": 2.0' in done.stdout and '"y": 0.5' in done.stdout
    assert "linear-worker@1" in done.stdout and "stopped 1 worker(s)" in done.stdout


def test_feed_sends_each_line_to_the_worker(mer: Mer) -> None:
    done = mer.main(stdin="feed mer-echo\nhello\nworld\n\nservers\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:2] == ["HELLO", "WORLD"]
    assert "local" in done.stdout


def test_every_run_is_in_the_access_log(mer: Mer) -> None:
    mer.main(stdin="run echo\nrun crash\nrun slow --data '{\"seconds\": 5}' --timeout 0.5\n")
    runs = json.loads(mer.main("--json", "-c", "runs").stdout)
    assert sorted(r["status"] for r in runs) == ["failed", "succeeded", "timeout"]
    assert all(r["finished_at"] for r in runs)



def test_an_in_memory_database_is_refused_in_one_line(mer: Mer) -> None:
    done = mer.main("--database-url", "sqlite+aiosqlite:///:memory:", "-c", "models")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].endswith("use a file: sqlite+aiosqlite:///path/to/mer.db")


def test_a_closed_output_pipe_ends_mer_like_sigpipe(mer: Mer) -> None:
    """`mer < job.mer | head -1`: once the reader is gone, the run under way is cancelled
    and recorded so, and mer exits 141 (128 + SIGPIPE) without a word."""
    proc = mer.popen("-c", "run slow --data '{\"seconds\": 60}'", "-c", "models",
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert "tick 1" in proc.stdout.readline()
    assert owned_by(proc.pid)  # the model runs (what is checked gone below)
    proc.stdout.close()  # the reader goes away; the next tick finds the pipe closed
    assert proc.wait(timeout=30) == 141
    assert proc.stderr.read() == ""
    record = json.loads(mer.main("--json", "-c", "runs --limit 1").stdout)[0]
    assert record["status"] == "cancelled" and record["finished_at"]
    assert not owned_by(proc.pid)  # the model was killed

    many = mer.popen(stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert many.stdin is not None and many.stdout is not None and many.stderr is not None
    many.stdout.close()
    many.stdin.write("models\n" * 50)
    many.stdin.close()
    assert many.wait(timeout=30) == 141 and many.stderr.read() == ""
