"""How a detached Slurm run's state and kept output are read (mer/execution/slurm_batch.py),
without a cluster: the scripts' output parsed, and the collect script run by sh on a job
directory."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from mer.domain import RunStatus
from mer.execution.slurm_batch import collect_script, final_result, parse_collected, parse_state


@pytest.mark.parametrize(("printed", "expected"), [
    ("exit 0", (RunStatus.SUCCEEDED, 0, None)),
    ("exit 3", (RunStatus.FAILED, 3, "exit status 3")),
    ("state PENDING", (RunStatus.QUEUED, None, None)),
    ("state COMPLETING", (RunStatus.RUNNING, None, None)),
    ("state TIMEOUT", (RunStatus.TIMEOUT, None, "the Slurm job ended TIMEOUT")),
    ("state CANCELLED by 0", (RunStatus.CANCELLED, None, "the Slurm job ended CANCELLED")),
    ("state OUT_OF_MEMORY", (RunStatus.FAILED, None, "the Slurm job ended OUT_OF_MEMORY")),
    ("state ", (RunStatus.LOST, None, "Slurm no longer knows the job, and it left no exit status")),
])
def test_the_state_of_a_job(printed: str, expected: tuple) -> None:
    assert parse_state(printed) == expected


def test_the_kept_output_is_capped_head_and_tail(tmp_path: Path) -> None:
    run_id = uuid.uuid4()
    job = tmp_path / str(run_id)
    job.mkdir()
    (job / "stdout").write_bytes(b"A" * 50 + b"B" * 100 + b"C" * 50 + b'\n{"r": 1}\n')
    (job / "slurm.out").write_text("slurmstepd: error: *** JOB 7 CANCELLED DUE TO TIME LIMIT ***\n")
    # no stderr file: nothing was written there
    done = subprocess.run(["sh", "-c", collect_script(str(tmp_path), run_id, 100)],
                          capture_output=True, check=True)
    out, err, slurm = parse_collected(done.stdout, 100)
    assert out.total == 210 and out.text().startswith("A" * 50 + "\n[... 110 bytes not kept ...]\n")
    assert out.text().endswith('{"r": 1}\n') and err.total == 0
    result = final_result(RunStatus.TIMEOUT, None, "the Slurm job ended TIMEOUT", [out, err, slurm], "7")
    assert result.result == {"r": 1} and result.job_id == "7" and result.bytes_out == 210
    assert result.error == ("the Slurm job ended TIMEOUT: slurmstepd: error: *** JOB 7 CANCELLED DUE "
                            "TO TIME LIMIT ***")
