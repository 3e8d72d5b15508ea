"""`server set NAME FIELD VALUE`: validated, audited, refused from a stale view."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.shell.harness import ShellOnFakes


@pytest.fixture
def two() -> Iterator[tuple[ShellOnFakes, ShellOnFakes]]:
    a = ShellOnFakes(allow_edit=True).seed()
    b = ShellOnFakes(allow_edit=True, store=a.store)
    yield a, b
    a.close()
    b.close()


def test_server_set_changes_one_field_and_is_audited(two) -> None:  # type: ignore[no-untyped-def]
    a, _ = two
    assert not a("server add gpu --kind ssh --host 10.0.0.5").failed
    for field, value, key, expected in (("port", "2222", "port", 2222), ("user", "mer", "user", "mer"),
                                        ("max-runs", "2", "max_runs", 2),
                                        ("identity", "~/.ssh/k", "identity_file", "~/.ssh/k"),
                                        ("port", "-", "port", None)):
        done = a(f"server set gpu {field} {value} --json")
        assert not done.failed, done.err
        assert json.loads(done.out)[key] == expected
    audit = json.loads(a("audit gpu --json").out)
    assert audit[0]["action"] == "server.set.port" and audit[0]["before"]["port"] == 2222


@pytest.mark.parametrize("line,message", [
    ("server set gpu port 70000", "error: port 70000 is not a TCP port (1-65535)"),
    ("server set gpu port x", "error: port 'x' is not a whole number"),
    ("server set gpu host -", "error: an ssh server needs --host"),
    ("server set gpu max-runs 0", "error: --max-runs must be at least 1"),
    ("server set gpx port 1", "error: server 'gpx' not found (did you mean 'gpu'?); see `servers`"),
])
def test_a_bad_server_value_is_one_line_and_changes_nothing(two, line: str, message: str) -> None:  # type: ignore[no-untyped-def]
    a, _ = two
    a("server add gpu --kind ssh --host 10.0.0.5")
    before = json.loads(a("server show gpu --json").out)
    done = a(line)
    assert done.failed and done.err.strip() == message
    assert json.loads(a("server show gpu --json").out) == before


def test_server_set_from_a_stale_view_is_refused(two) -> None:  # type: ignore[no-untyped-def]
    a, b = two
    a("server add gpu --kind ssh --host 10.0.0.5")
    a("server show gpu")
    b("servers")
    assert not b("server set gpu port 2200").failed
    done = a("server set gpu port 2300")
    assert done.failed and "changed by someone else" in done.err
    assert json.loads(a("server show gpu --json").out)["port"] == 2200
    assert not a("server set gpu port 2300").failed  # it has now seen the change


def test_trust_in_a_script_needs_yes_or_the_expected_fingerprint(two) -> None:  # type: ignore[no-untyped-def]
    a, _ = two
    done = a("server trust local")
    assert done.failed and done.err.strip() == (
        "error: local presents ssh-ed25519 SHA256:fake; trust it: in a script, add --yes or "
        "--fingerprint SHA256:... to confirm")
    done = a("server trust local --fingerprint SHA256:other")
    assert done.failed and "not the expected SHA256:other; nothing was recorded" in done.err
    assert not any(e.action == "server.trust" for e in a.store.audit)
    assert "trusted local: ssh-ed25519 SHA256:fake" in a("server trust local --fingerprint SHA256:fake").out
    assert not a("server trust local --yes").failed
