"""Batches on mer's real runtime: every run of a batch is its own access-log row with
the batch's id (SQLite and PostgreSQL), no server runs more than its max-runs (the
model itself counts how many of it run at once), and a fan-out over two names of a real
sshd spreads the runs over both."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from mer.domain import Server
from mer.services import batch as batch_svc
from mer.services import runs as run_svc
from tests.faults.conftest import PY, seed_servers

# Counts the runs of it alive at once in STATE (under a lock) and keeps the peak; each
# run waits (bounded) until two have overlapped, so the peak is 2 with max-runs 2
# whatever the timing, and more only if mer started more at once.
COUNTER = r"""
import fcntl, json, os, sys, time
folder = sys.argv[1]
request = json.loads(sys.stdin.readline())
def change(delta):
    with open(os.path.join(folder, "lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = os.path.join(folder, "state.json")
        state = json.load(open(path)) if os.path.exists(path) else {"now": 0, "peak": 0}
        state["now"] += delta
        state["peak"] = max(state["peak"], state["now"])
        json.dump(state, open(path, "w"))
        return state
change(1)
for _ in range(500):
    if change(0)["peak"] >= 2:
        break
    time.sleep(0.01)
change(-1)
print(json.dumps({"i": request["input"]}))
"""
ECHO = ["python3", "-c", "import json, sys; r = json.loads(sys.stdin.readline()); print(json.dumps(r['input']))"]


def _items(n: int) -> list[batch_svc.BatchItem]:
    return batch_svc.plan_items(inputs=[{"i": i} for i in range(n)])


async def test_a_batch_keeps_max_runs_and_logs_each_run_with_its_batch(db_url: str, runtime_on, tmp_path: Path) -> None:
    script = tmp_path / "counter.py"
    script.write_text(COUNTER)
    await seed_servers(db_url, Server(name="local", max_runs=2),
                       count=("local", [PY, str(script), str(tmp_path)]),
                       echo=("local", [PY, *ECHO[1:]]))
    ctx = (await runtime_on(db_url)).ctx
    await run_svc.run_model(ctx, "echo", input={"i": -1})  # a run of no batch
    report = await batch_svc.run_batch(ctx, "count", _items(6), parallel=6)
    assert report.ok, [o.image() for o in report.outcomes]
    assert json.loads((tmp_path / "state.json").read_text()) == {"now": 0, "peak": 2}
    assert [o.result for o in report.outcomes] == [{"i": {"i": n}} for n in range(6)]
    found = await batch_svc.find_batch(ctx, report.batch_id.hex[:8])
    assert found == report.batch_id
    rows = await run_svc.list_runs(ctx, batch_id=found, limit=100)
    assert sorted(r.id for r in rows) == sorted(o.run_id for o in report.outcomes)
    assert all(r.batch_id == report.batch_id and str(r.status) == "succeeded" for r in rows)
    assert len(await run_svc.list_runs(ctx, limit=100)) == 7


@pytest.mark.ssh
async def test_a_fan_out_over_two_ssh_servers_uses_both(sshd_server, runtime_on, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'mer.db'}"
    a, b = (dataclasses.replace(sshd_server.server, name=name, max_runs=1) for name in ("a", "b"))
    await seed_servers(url, Server(name="local"), a, b, echo=("a", ECHO))
    ctx = (await runtime_on(url)).ctx
    report = await batch_svc.run_batch(ctx, "echo", _items(6), servers=["a", "b"])
    assert report.ok, [o.image() for o in report.outcomes]
    assert [o.result for o in report.outcomes] == [{"i": n} for n in range(6)]
    used = [o.server for o in report.outcomes]
    assert set(used) == {"a", "b"} and used[:2] == ["a", "b"]
    rows = await run_svc.list_runs(ctx, batch_id=report.batch_id)
    assert sorted(r.server for r in rows) == sorted(used)
