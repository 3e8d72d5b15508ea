"""`pipeline add|list|show|remove|run`, `pipelines`, `run pipeline:NAME` and `runs show`
of a pipeline run, in-process on the fakes; Ctrl-C mid-pipeline in the real `mer`."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator

import pytest

from mer.domain import ModelConfig, RunResult, RunStatus
from mer.services import models as model_svc
from mer.services.context import ServiceContext
from tests.processes import owned_by
from tests.services.test_pipelines import BEHAVIOURS, ModelsByName
from tests.shell.conftest import Mer
from tests.shell.harness import ShellOnFakes


def _shell(allow_edit: bool) -> ShellOnFakes:
    sh = ShellOnFakes(allow_edit=allow_edit, executor=ModelsByName(BEHAVIOURS)).seed()
    edit = ServiceContext(uow=sh.ctx.uow, executors=sh.ctx.executors, allow_edit=True, actor="seed")

    async def models() -> None:
        for name in BEHAVIOURS:
            await model_svc.add_model(edit, ModelConfig(name=name, server="local", command=[name]))

    sh.bridge.call(models())
    return sh


@pytest.fixture
def sh() -> Iterator[ShellOnFakes]:
    shell = _shell(allow_edit=True)
    yield shell
    shell.close()


def _ok(done) -> str:  # noqa: ANN001
    assert not done.failed and done.exit_code == 0, done.err
    return done.out


def _one_line(done, code: int) -> str:  # noqa: ANN001
    assert done.failed and done.exit_code == code and done.out == ""
    lines = done.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.err
    return lines[0]


def test_pipeline_edits_are_refused_without_allow_edit() -> None:
    ro = _shell(allow_edit=False)
    try:
        line = _one_line(ro("pipeline add chain --step inc --step double"), 1)
        assert line == "error: editing is disabled: start mer with --allow-edit"
        assert ro.store.pipelines == {}
        assert "(needs --allow-edit)" in ro("help pipeline").out
        assert json.loads(_ok(ro("pipelines --json"))) == []
    finally:
        ro.close()


def test_add_list_show_remove(sh: ShellOnFakes) -> None:
    out = _ok(sh("pipeline add chain --step inc --step double@1 --map result.x=input.x "
                 "--map result.note=input.why --description 'add then double'"))
    assert out == "added pipeline chain: inc -> double@1\n"
    listed = _ok(sh("pipelines"))
    assert listed.splitlines()[1].split() == ["chain", "inc", "->", "double@1", "add", "then", "double"]
    shown = _ok(sh("pipeline chain"))  # `pipeline NAME` is `pipeline show NAME`
    assert "2     double@1  result.x=input.x, result.note=input.why" in shown
    image = json.loads(_ok(sh("pipeline show chain --json")))
    assert image["steps"] == [{"model": "inc", "map": []},
                              {"model": "double@1", "map": [["result.x", "input.x"],
                                                            ["result.note", "input.why"]]}]
    assert json.loads(_ok(sh("pipeline remove chain --json"))) == {"removed": "chain"}
    audit = json.loads(_ok(sh("audit chain --json")))
    assert [(e["action"], e["target"]) for e in audit] == [("pipeline.remove", "pipeline chain"),
                                                          ("pipeline.add", "pipeline chain")]
    assert _one_line(sh("pipeline show chain"), 1) == \
        "error: pipeline 'chain' not found; see `pipelines`"


@pytest.mark.parametrize(("line", "message", "code"), [
    ("pipeline add p --map result.y=input.x --step inc", "--map result.y=input.x comes before any --step", 2),
    ("pipeline add p --step inc --step double --map y", "--map 'y' is not result.PATH=input.PATH", 2),
    ("pipeline add p --step inc --step nosuch", "model 'nosuch' not found", 1),
    ("pipeline add p", "the following arguments are required: --step", 2),
])
def test_a_bad_pipeline_is_one_line_and_stores_nothing(sh: ShellOnFakes, line: str, message: str,
                                                       code: int) -> None:
    assert message in _one_line(sh(line), code)
    assert sh.store.pipelines == {}


def test_run_pipeline_streams_each_step_and_ends_with_the_last_result(sh: ShellOnFakes) -> None:
    _ok(sh("pipeline add chain --step inc --step double --step inc"))
    done = sh("run pipeline:chain --data '{\"x\": 1}'")
    _ok(done)
    lines = done.err.splitlines()
    assert [line.split(":")[0] for line in lines[:3]] == ["step 1/3", "step 2/3", "step 3/3"]
    assert lines[1].startswith("step 2/3: double@1 succeeded (exit 0)")
    assert lines[3].startswith("pipeline:chain@1 succeeded (exit 0)")
    image = json.loads(_ok(sh("pipeline run chain --data '{\"x\": 2}' --json")))
    assert (image["model"], image["status"], image["result"]) == ("pipeline:chain", "succeeded", {"x": 7})


def test_a_failed_step_fails_the_command_and_runs_show_lists_the_steps(sh: ShellOnFakes) -> None:
    _ok(sh("pipeline add broken --step inc --step crash --step double"))
    done = sh("run pipeline:broken --data '{\"x\": 1}' --json")
    assert done.failed and done.exit_code == 1
    image = json.loads(done.out)
    assert image["status"] == "failed" and image["error"] == "step 2 (crash@1) failed (exit 3)"
    shown = json.loads(_ok(sh(f"runs show {image['id']} --json")))
    assert [(s["model"], s["status"], s["exit_code"]) for s in shown["steps"]] == [
        ("inc", "succeeded", 0), ("crash", "failed", 3)]
    text = _ok(sh(f"runs {image['id'][:8]}"))
    step_lines = text.split("steps:\n", 1)[1].splitlines()
    assert step_lines[0].split() == ["STEP", "RUN", "MODEL", "STATUS", "EXIT", "DURATION"]
    assert step_lines[2].split()[:5] == ["2", shown["steps"][1]["id"][:8], "crash@1", "failed", "3"]
    one_step = json.loads(_ok(sh(f"runs show {shown['steps'][0]['id']} --json")))
    assert "steps" not in one_step  # a model's run has none


def test_a_timed_out_step_ends_the_pipeline_timed_out(sh: ShellOnFakes) -> None:
    _ok(sh("pipeline add slow --step stuck --step inc"))
    done = sh("pipeline run slow --data '{\"x\": 1}'")
    assert done.failed and done.exit_code == 1
    assert "pipeline:slow@1 timeout" in done.err and ": step 1 (stuck@1) timeout" in done.err


@pytest.mark.parametrize(("line", "message"), [
    ("run pipeline:chain --param k=1", "--param is for a run of one model"),
    ("run pipeline:chain --server local", "--server is for a run of one model"),
    ("train pipeline:chain", "pipeline:chain is a pipeline; `train` runs one model's"),
    ("run pipeline:chian", "pipeline 'chian' not found (did you mean 'chain'?)"),
])
def test_what_a_pipeline_run_cannot_take_is_refused(sh: ShellOnFakes, line: str, message: str) -> None:
    _ok(sh("pipeline add chain --step inc"))
    assert message in _one_line(sh(line), 2 if "--" in message or "train" in message else 1)
    assert sh.store.runs == {}


def test_a_plain_model_run_is_unchanged(sh: ShellOnFakes) -> None:
    sh.executor.behaviours["echo"] = lambda given: RunResult(status=RunStatus.SUCCEEDED,
                                                             exit_code=0, result=given)
    image = json.loads(_ok(sh("run echo --data 5 --json")))
    assert image["result"] == 5 and "steps" not in image
    assert [r.parent_id for r in sh.store.runs.values()] == [None]


def test_ctrl_c_mid_pipeline_cancels_the_running_step_and_the_pipeline(mer: Mer) -> None:
    added = mer.main("--allow-edit", "-c", "pipeline add p --step echo --step slow --step echo")
    assert added.returncode == 0, added.stderr
    proc = mer.popen("-c", "run pipeline:p", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    lines = [proc.stdout.readline(), proc.stdout.readline()]  # echo's result, then slow's tick
    assert lines[0].startswith('{"echo"') and "tick 1" in lines[1], lines
    assert owned_by(proc.pid)  # slow runs (what is checked gone below)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    rows = json.loads(mer.main("--json", "-c", "runs --limit 5").stdout)
    assert [(r["model"], r["status"]) for r in rows] == [
        ("slow", "cancelled"), ("echo", "succeeded"), ("pipeline:p", "cancelled")]
    assert rows[2]["error"] == "step 2 (slow) cancelled by the user" and rows[2]["finished_at"]
    assert not owned_by(proc.pid)  # the step's model was killed
