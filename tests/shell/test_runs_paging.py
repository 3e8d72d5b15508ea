"""`runs --before ID` / `--page N` and `runs prune` as commands (on fakes): the hint that
leads to the next page, one JSON line under --json, prune's flags, its one-line errors
and its prompt. The SQL behind them: tests/db/test_run_pages.py, test_run_retention.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest

from mer.domain import RunRecord, RunResult, RunStatus, utcnow
from mer.shell import confirm
from tests.fakes import FakeExecutor
from tests.shell.harness import ShellOnFakes

NOW = utcnow()


def _runs(sh: ShellOnFakes, n: int, days_ago: float = 0, status: RunStatus = RunStatus.SUCCEEDED,
          model: str = "lin") -> list[RunRecord]:
    made = []
    for i in range(n):
        # Several runs share each instant: the id breaks the tie.
        at = NOW - timedelta(days=days_ago, seconds=i // 3)
        r = RunRecord(model=model, version="1", server="local", os_user="t", status=status,
                      started_at=at, finished_at=at, stdout="out")
        sh.store.runs[r.id] = r
        made.append(r)
    return made


@pytest.fixture
def sh() -> Iterator[ShellOnFakes]:
    shell = ShellOnFakes(allow_edit=True)
    yield shell
    shell.close()


def test_each_page_names_the_next_and_following_them_lists_every_run_once(sh: ShellOnFakes) -> None:
    made = _runs(sh, 7) + _runs(sh, 2, model="other")
    seen: list[str] = []
    line = "runs --model lin --limit 3"
    for _ in range(5):
        done = sh(line)
        assert not done.failed, done.err
        *table, last = done.out.splitlines()
        if not last.startswith("more: "):
            table.append(last)
            break
        line = last.removeprefix("more: ")
        assert line.startswith("runs --model lin --limit 3 --before ")
        seen += [row.split()[0] for row in table[1:]]
    seen += [row.split()[0] for row in table[1:]]
    newest_first = sorted(made[:7], key=lambda r: (r.started_at, r.id.hex), reverse=True)
    assert seen == [str(r.id)[:8] for r in newest_first]


class SlurmSaysRunning(FakeExecutor):
    """A scheduler whose every job now runs (mer.execution.interface.Detacher)."""

    async def submit(self, request, server):  # type: ignore[no-untyped-def]
        return "17"

    async def poll(self, server, run_id, job_id):  # type: ignore[no-untyped-def]
        return RunResult(status=RunStatus.RUNNING)

    async def forget(self, server, run_id):  # type: ignore[no-untyped-def]
        return None

    async def cancel_job(self, server, job_id):  # type: ignore[no-untyped-def]
        return None


def test_a_detached_run_brought_up_to_date_by_a_listing_keeps_its_snapshot() -> None:
    sh = ShellOnFakes(executor=SlurmSaysRunning()).seed()
    try:
        queued = RunRecord(model="lin", version="1", server="local", os_user="t",
                           status=RunStatus.QUEUED, job_id="17",
                           snapshot={"config": {"timeout": 5}})
        sh.store.runs[queued.id] = queued
        [listed] = json.loads(sh("runs --json").out)
        assert listed["status"] == "running"
        stored = sh.store.runs[queued.id]
        assert stored.status is RunStatus.RUNNING and stored.snapshot == {"config": {"timeout": 5}}
    finally:
        sh.close()


def test_under_json_a_page_is_one_line_and_no_hint(sh: ShellOnFakes) -> None:
    _runs(sh, 5)
    done = sh("runs --limit 2 --json")
    assert done.out.count("\n") == 1 and len(json.loads(done.out)) == 2
    after = json.loads(done.out)[-1]["id"]
    nxt = json.loads(sh(f"runs --limit 2 --before {after} --json").out)
    assert all(r["id"] != after for r in nxt) and len(nxt) == 2


def test_page_n_is_the_nth_page_of_limit(sh: ShellOnFakes) -> None:
    _runs(sh, 5)
    every = [r["id"] for r in json.loads(sh("runs --json").out)]
    assert [r["id"] for r in json.loads(sh("runs --limit 2 --page 2 --json").out)] == every[2:4]
    assert [r["id"] for r in json.loads(sh("runs --limit 2 --page 3 --json").out)] == every[4:]
    last = sh("runs --limit 2 --page 3")
    assert "more:" not in last.out  # the last page leads nowhere


@pytest.mark.parametrize(("line", "message"), [
    ("runs --before 0000abcd", "error: run '0000abcd' not found; see `runs`"),
    ("runs --page 0", "error: --page must be at least 1"),
    ("runs prune --before soon --yes", "error: --before 'soon' is not a time; use e.g. 30m, 2h, "
                                       "1d or 2026-11-24T10:00"),
    ("runs prune --before 2999-01-01 --yes", "error: --before 2999-01-01T00:00:00"),
    ("runs prune --before 30d", "error: runs prune deletes runs: in a script, add --yes to "
                                "confirm (--dry-run counts them)"),
])
def test_bad_input_is_one_line(sh: ShellOnFakes, line: str, message: str) -> None:
    _runs(sh, 2, days_ago=40)
    done = sh(line)
    assert done.failed and done.err.startswith(message) and done.err.count("\n") == 1, done.err
    assert len(sh.store.runs) == 2 and sh.store.audit == []


def test_prune_needs_allow_edit() -> None:
    ro = ShellOnFakes(allow_edit=False)
    try:
        _runs(ro, 2, days_ago=40)
        done = ro("runs prune --before 30d --yes")
        assert done.failed and "editing is disabled" in done.err
        assert len(ro.store.runs) == 2
    finally:
        ro.close()


def test_dry_run_counts_and_deletes_nothing(sh: ShellOnFakes) -> None:
    _runs(sh, 3, days_ago=40)
    _runs(sh, 2, days_ago=40, status=RunStatus.FAILED)
    _runs(sh, 1, days_ago=40, status=RunStatus.RUNNING)
    _runs(sh, 2, days_ago=1)
    done = sh("runs prune --before 30d --dry-run")
    assert done.out.startswith("5 runs would be deleted (started before "), done.out
    kept = json.loads(sh("runs prune --before 30d --keep-failed --dry-run --json").out)
    assert kept["would_delete"] == 3 and kept["keep_failed"] is True
    assert len(sh.store.runs) == 8 and sh.store.audit == []


def test_prune_deletes_old_ended_runs_and_audits_once(sh: ShellOnFakes) -> None:
    _runs(sh, 3, days_ago=40)
    failed = _runs(sh, 2, days_ago=40, status=RunStatus.FAILED)
    running = _runs(sh, 1, days_ago=40, status=RunStatus.RUNNING)
    recent = _runs(sh, 2, days_ago=1)
    done = sh("runs prune --before 30d --keep-failed --yes --json")
    assert json.loads(done.out)["deleted"] == 3 and done.out.count("\n") == 1
    assert set(sh.store.runs) == {r.id for r in failed + running + recent}
    [entry] = sh.store.audit
    assert entry.action == "runs.prune" and entry.actor == "tester"
    assert entry.after == {"deleted": 3, "keep_failed": True, "complete": True}
    audit = sh("audit --json")
    assert json.loads(audit.out)[0]["action"] == "runs.prune"


@pytest.mark.parametrize("answer", ["y", "n"])
def test_a_terminal_is_asked_with_the_count(sh: ShellOnFakes, monkeypatch: pytest.MonkeyPatch,
                                            answer: str) -> None:
    _runs(sh, 3, days_ago=40)
    questions: list[str] = []
    monkeypatch.setattr(confirm, "person_present", lambda shell: True)
    monkeypatch.setattr(sh.shell, "read_input", lambda q, **_: questions.append(q) or answer)
    done = sh("runs prune --before 30d")
    assert not done.failed, done.err
    [question] = questions
    assert question.startswith("delete 3 runs started before ") and question.endswith("? [y/N] ")
    if answer == "y":
        assert sh.store.runs == {} and done.out.startswith("3 runs deleted")
    else:
        assert len(sh.store.runs) == 3 and done.out == "nothing changed\n"
