"""A moved alias is followed at once: shell A has run `echo@live` (its plan cached), shell
B moves `live` to another version, and A's next `run echo@live` runs that version (the
alias table's triggers move the catalog generation, so A's cached plan is read again).
Two in-process shells on one database, SQLite and PostgreSQL; the real example model."""

from __future__ import annotations

import json


def _json(done) -> dict:  # noqa: ANN001
    assert not done.failed, done.err
    return json.loads(done.out)


def test_a_moved_alias_is_what_the_next_run_of_another_shell_runs(shells) -> None:
    a, b = shells
    _json(b("model add echo@2 --from echo@1 --json"))
    _json(b("model alias echo live 1 --json"))
    for _ in range(2):  # the second run goes by A's cached plan
        ran = _json(a("run echo@live --json --data 1"))
        assert (ran["version"], ran["alias"], ran["result"]["echo"]["version"]) == ("1", "live", "1")
    assert a.shell.ctx.run_plans.get(("echo", "live")) is not None
    moved = _json(b("model alias echo live 2 --json"))
    assert (moved["before"], moved["version"]) == ("1", "2")
    ran = _json(a("run echo@live --json --data 1"))
    # The model itself was asked as version 2: its request said so.
    assert (ran["version"], ran["alias"], ran["result"]["echo"]["version"]) == ("2", "live", "2")
    record = _json(b(f"runs show {ran['id']} --json"))
    assert (record["version"], record["alias"]) == ("2", "live")
    entries = [e for e in _json(b("audit echo --json")) if e["target"] == "model echo@live"]
    assert [e["action"] for e in entries] == ["alias.move", "alias.set"]
