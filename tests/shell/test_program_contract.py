"""The contract for programs: under --json every command prints one JSON document on
one line of stdout and nothing else; a script's errors name their line; `--input -`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.shell.conftest import Mer
from tests.shell.harness import ShellOnFakes

EVERY_COMMAND = [
    "models", "model list", "show lin", "model show lin", "param lin", "weights lin",
    "weights lin w", "weights history lin w", "servers", "server show local", "ping local",
    "runs", "workers", "settings", "stop lin", "run lin --data 1",
    "model add x --server local --command true", "model set x description two words",
    "model disable x", "model enable x", "param set lin lr 0.1", "param unset lin lr",
    "weights set lin w --values 1,2 --resize", "weights set lin w[0]=3", "weights rollback lin w 1",
    "weights set lin w --values 1,2,3", "weights set lin v --values 1 --new", "weights remove lin v --yes",
    "server add s2 --kind local", "server trust local --yes", "server trust local --fingerprint SHA256:fake",
    "server remove s2", "model remove x --yes",
    "pipeline add p --step lin --step echo", "pipelines", "pipeline show p", "run pipeline:p --data 1",
    "pipeline run p --data 1", "pipeline remove p",
]


@pytest.fixture
def sh() -> Iterator[ShellOnFakes]:
    shell = ShellOnFakes(allow_edit=True, json_output=True).seed()
    yield shell
    shell.close()


def test_every_command_prints_one_json_line_under_json(sh: ShellOnFakes) -> None:
    for line in EVERY_COMMAND:
        done = sh(line)
        assert not done.failed, (line, done.err)
        assert done.out.endswith("\n") and done.out.count("\n") == 1, (line, done.out)
        json.loads(done.out)


def test_runs_show_under_json_is_the_whole_record(sh: ShellOnFakes) -> None:
    sh("run lin --data 1")
    run_id = json.loads(sh("runs").out)[0]["id"]
    image = json.loads(sh(f"runs {run_id[:5]}").out)
    assert image["id"] == run_id and "stdout" in image


def test_a_script_error_names_the_file_and_line(mer: Mer, tmp_path: Path) -> None:
    script = tmp_path / "job.mer"
    script.write_text("# nightly\nmodels\n\nshow nope\nrun crash\nservers\n")
    done = mer("--script", str(script))
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert lines[0] == f"{script}:4: error: model 'nope' not found; see `models`"
    assert lines[-1].startswith("crash@1 failed (exit 3)")  # the failed run names its model
    assert "local" in done.stdout.splitlines()[-1]  # the rest ran


def test_input_dash_reads_standard_input(mer: Mer) -> None:
    done = mer("-c", "run echo --input -", stdin='{"from": "stdin"}')
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["echo"]["input"] == {"from": "stdin"}
    text = mer("-c", "run echo --input -", stdin="plain words\n")
    assert json.loads(text.stdout.splitlines()[-1])["echo"]["input"] == "plain words\n"


def test_input_dash_is_refused_when_stdin_is_the_script(mer: Mer) -> None:
    done = mer(stdin="run echo --input -\nservers\n")
    assert done.returncode == 1
    assert done.stderr.splitlines()[0] == (
        "<stdin>:1: error: --input - reads standard input, but it holds the commands being "
        "run; use --input FILE or --script FILE")


def test_a_run_summary_names_the_model_and_a_worker_answer_has_no_exit_status() -> None:
    from mer.domain import RunResult, RunStatus

    shell = ShellOnFakes().seed()
    try:
        shell.executor.result = RunResult(status=RunStatus.SUCCEEDED, exit_code=None, result=1)
        done = shell("run lin")
        assert done.err.startswith("lin@1 succeeded in ") and "exit" not in done.err
        shell.executor.result = RunResult(status=RunStatus.FAILED, exit_code=3, error="boom")
        done = shell("run lin")
        assert done.failed and done.err.startswith("lin@1 failed (exit 3) in ")
        assert done.err.rstrip().endswith(": boom")
    finally:
        shell.close()
