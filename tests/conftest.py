"""Shared test setup. Fixtures for the real PostgreSQL server, a real sshd, real podman
and a real Slurm cluster live in tests/fixtures_pg.py, tests/fixtures_sshd.py,
tests/fixtures_podman.py and tests/fixtures_slurm.py and are loaded here as plugins."""

from __future__ import annotations

import os

import pytest

pytest_plugins = ("tests.fixtures_pg", "tests.fixtures_sshd", "tests.fixtures_podman",
                  "tests.fixtures_slurm")

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def skip_or_fail(reason: str) -> None:
    """Skip a test that needs an unavailable real server, except under CI, where the
    missing server is a failure: CI must exercise the real parts."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: this test must run here)", pytrace=False)
    pytest.skip(reason)
