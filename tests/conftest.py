"""Shared test setup. Fixtures for the real PostgreSQL server, a real sshd, real podman
and a real Slurm cluster live in tests/fixtures_pg.py, tests/fixtures_sshd.py,
tests/fixtures_podman.py and tests/fixtures_slurm.py and are loaded here as plugins."""

from __future__ import annotations

import os

import pytest

pytest_plugins = ("tests.fixtures_pg", "tests.fixtures_sshd", "tests.fixtures_podman",
                  "tests.fixtures_slurm")

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: no error without the plugin
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (pyproject.toml's addopts): one worker more than the cores, since many
    tests spend their time waiting on a subprocess, an sshd or a database (measured on
    two cores: 3 workers 75 s, 4 workers 79 s, 2 workers 91 s). An explicit ``-n`` wins;
    so does PYTEST_XDIST_AUTO_NUM_WORKERS, as with xdist's own rule."""
    forced = os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS", "")
    if forced.isdigit():
        return int(forced)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return cores + 1


def skip_or_fail(reason: str) -> None:
    """Skip a test that needs an unavailable real server, except under CI, where the
    missing server is a failure: CI must exercise the real parts."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: this test must run here)", pytrace=False)
    pytest.skip(reason)
