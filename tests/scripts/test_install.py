"""mer installed from its wheel, outside the checkout: `mer-migrate up` and a `run` work
from any directory (the migrations ship in the package; a non-editable install used to
fail with IndexError looking for them beside the source tree).

Cost: the wheel is built without build isolation (setuptools comes with the dev extra)
from a copy of the sources, and installed with --no-deps into a new venv that sees the
dependencies of the test's own venv through a .pth file: a few seconds, no network.
.ci/run also installs it for real, dependencies and all (pip and pipx).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(*argv: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None,
         ) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"{argv}: {done.stderr}"
    return done


def _wheel(tmp: Path) -> Path:
    src = tmp / "src"
    shutil.copytree(ROOT / "mer", src / "mer", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    # pyproject's build-system needs setuptools>=77; an older venv builds it isolated (slower).
    isolation = ["--no-build-isolation"] if int(version("setuptools").split(".")[0]) >= 77 else []
    _run(sys.executable, "-m", "pip", "wheel", src, "--no-deps", *isolation, "-q", "-w", tmp / "dist")
    (wheel,) = (tmp / "dist").glob("mer-*.whl")
    return wheel


@pytest.mark.slow
def test_the_wheel_installed_elsewhere_migrates_and_runs_a_model(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path)
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    purelib = _run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").stdout.strip()
    # The dependencies, not mer: a directory named in a .pth is not a site directory, so
    # the editable install's own .pth there is not processed.
    (Path(purelib) / "_test_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
         "-q", wheel)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MER_")}
    env.update(MER_DATA_DIR=str(tmp_path / "data"), MER_ENV_FILE=str(tmp_path / "none.env"))
    where = _run(python, "-c", "import mer; print(mer.__file__)", cwd=elsewhere, env=env)
    assert where.stdout.strip().startswith(purelib), "the test ran the checkout, not the wheel"

    up = _run(venv / "bin" / "mer-migrate", "up", "--catalog", ROOT / "examples" / "catalog.toml",
              cwd=elsewhere, env=env)
    assert "applied 0001" in up.stdout and "7 added" in up.stdout
    run = _run(venv / "bin" / "mer", "--json", "-c", """run linear --data '{"x": [1, 2, 3]}'""",
               cwd=elsewhere, env=env)
    record = json.loads(run.stdout.splitlines()[-1])
    assert record["status"] == "succeeded" and record["result"] == {"y": 2.0}
