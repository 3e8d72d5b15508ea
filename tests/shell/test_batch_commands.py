"""`run --batch/--sweep` and `runs --batch` in-process on fakes: what a script and
--json get, one-line errors before anything runs; the progress bar's text."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from mer.domain import RunResult, RunStatus
from mer.services.batch import BatchItem, BatchOutcome
from mer.shell.progress import BatchProgress
from tests.shell.harness import ShellOnFakes


@pytest.fixture
def sh():
    shell = ShellOnFakes().seed()
    yield shell
    shell.close()


def test_a_sweep_under_json_prints_one_object_per_run(sh) -> None:
    done = sh("run echo --sweep x=1,2 --sweep y=a,b --data 7 --json")
    assert not done.failed and done.err == ""
    lines = [json.loads(line) for line in done.out.splitlines()]
    assert len(lines) == 4 and all(line["status"] == "succeeded" for line in lines)
    assert sorted(json.dumps(line["params"], sort_keys=True) for line in lines) == sorted(
        json.dumps({"x": x, "y": y}, sort_keys=True) for x in (1, 2) for y in ("a", "b"))
    assert len({line["batch_id"] for line in lines}) == 1
    assert all(r.payload["input"] == 7 for r in sh.executor.requests)


def test_a_batch_in_a_script_prints_one_summary_line_and_writes_the_results(sh, tmp_path: Path) -> None:
    inputs, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inputs.write_text('{"a": 1}\n"two"\n')
    done = sh(f"run echo --batch {inputs} --out {out} --parallel 2")
    assert not done.failed and done.out == ""
    assert done.err.count("\n") == 1 and done.err.startswith("batch ")
    assert "2 runs of echo@1" in done.err and "2 succeeded" in done.err and str(out) in done.err
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["input"] for line in lines] == [{"a": 1}, "two"]
    batch = done.err.split()[1].rstrip(":")
    listed = json.loads(sh(f"runs --batch {batch} --json").out)
    assert sorted(r["id"] for r in listed) == sorted(line["run_id"] for line in lines)
    assert json.loads(sh("run echo --data 1 --json").out)["status"] == "succeeded"
    assert len(json.loads(sh(f"runs --batch {batch} --json").out)) == 2  # only the batch's


def test_a_failed_run_fails_the_batch_command(sh) -> None:
    sh.executor.result = RunResult(status=RunStatus.FAILED, exit_code=3, error="exit status 3")
    done = sh("run echo --sweep x=1,2,3 --stop-on-error --parallel 1")
    assert done.failed and done.exit_code == 1
    assert "1 failed, 2 skipped (stopped at the first failure)" in done.err


@pytest.mark.parametrize(("line", "needle"), [
    ("run echo --batch {bad}", "bad.jsonl:2: not JSON"),
    ("run echo --batch {bad} --data 1", "--batch gives each run its input"),
    ("run echo --parallel 2", "--parallel goes with --batch FILE or --sweep"),
    ("run echo --sweep x", "--sweep 'x' is not KEY=V1,V2"),
    ("run echo --sweep x=1 --server local --servers local", "--server or --servers"),
    ("run echo --sweep x=1 --servers local,nope", "server 'nope' not found"),
    ("runs --batch zz", "not a batch id"),
    ("run echo --sweep x=1,2 --detach", "--detach submits one run"),
])
def test_bad_batch_input_is_one_line_and_runs_nothing(sh, tmp_path: Path, line: str, needle: str) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"ok": 1}\nnot json\n')
    done = sh(line.format(bad=bad))
    assert done.failed and done.exit_code in (1, 2)
    assert needle in done.err and done.err.count("\n") == 1, done.err
    assert sh.executor.requests == []


def test_the_progress_bar_shows_done_failed_running_and_rate() -> None:
    bar = BatchProgress(io.StringIO(), 3, "echo")
    items = [BatchItem(i) for i in range(3)]
    for item in items:
        bar.started(item)
    bar.finished(BatchOutcome(items[0], "succeeded"))
    bar.finished(BatchOutcome(items[1], "failed", error="exit status 3"))
    text = bar.render()
    assert "echo" in text and "2/3" in text and "1 failed, 1 running" in text
    assert "runs/s" in text


def test_the_shell_starts_without_the_batch_service_or_rich_progress() -> None:
    """Cold start is benchmarked: batches load what they need when one runs."""
    import subprocess
    import sys

    code = ("import sys, mer.shell.app; "
            "print(sorted(m for m in ('mer.services.batch', 'mer.services.batch_plan', 'mer.shell.progress', 'rich.progress') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
