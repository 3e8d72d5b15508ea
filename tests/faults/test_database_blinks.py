"""The access log survives a database that blinks (issue 9): a dropped connection is
replaced, a run under way still completes its row once, a final record that cannot
reach the database is kept in the local journal and written when it is back, and a
shell started while the database was down works once it is up."""

from __future__ import annotations

import asyncio
import select
import subprocess
from pathlib import Path

import pytest

from mer.db.journal import RunJournal
from mer.domain import RunStatus
from mer.errors import RecordJournaled
from mer.services.runs import run_model
from tests.faults.conftest import QUICK, SLOW, seed
from tests.fixtures_pg import PG_HOST, PG_PORT, PG_USER

pytestmark = pytest.mark.postgres


def _db(url: str) -> str:
    return url.rsplit("/", 1)[1]


async def _admin(database: str, sql: str, *args: object) -> list:
    import asyncpg

    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=database)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def _terminate_backends(database: str) -> int:
    """What a restart, a failover or an idle-connection killer does to mer's connections."""
    rows = await _admin("postgres", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                    "WHERE datname = $1 AND pid <> pg_backend_pid()", database)
    return len(rows)


async def _runs(database: str) -> dict[str, str]:
    rows = await _admin(database, "SELECT id, status FROM access_log")
    return {row["id"].hex: row["status"] for row in rows}


async def test_a_connection_dropped_between_runs_is_replaced(pg_fresh: str, runtime_on) -> None:
    await seed(pg_fresh, quick=QUICK)
    runtime = await runtime_on(pg_fresh)
    first, _ = await run_model(runtime.ctx, "quick")
    assert await _terminate_backends(_db(pg_fresh)) >= 1
    second, _ = await run_model(runtime.ctx, "quick")  # was: "connection is closed", forever
    assert second.status is RunStatus.SUCCEEDED
    assert await _runs(_db(pg_fresh)) == {first.id.hex: "succeeded", second.id.hex: "succeeded"}


async def test_a_connection_dropped_during_a_run_still_completes_its_row(pg_fresh: str, runtime_on) -> None:
    await seed(pg_fresh, slow=SLOW)
    runtime = await runtime_on(pg_fresh)
    await run_model(runtime.ctx, "slow")  # the run log's connection is open
    run = asyncio.create_task(run_model(runtime.ctx, "slow"))
    await asyncio.sleep(0.3)  # the row is written, the model runs
    assert await _terminate_backends(_db(pg_fresh)) >= 1
    record, _ = await run
    assert record.status is RunStatus.SUCCEEDED
    rows = await _runs(_db(pg_fresh))
    assert len(rows) == 2 and rows[record.id.hex] == "succeeded"  # one row, completed


async def test_a_database_down_when_a_run_ends_keeps_the_record_in_the_journal(
        pg_fresh: str, proxy, runtime_on, tmp_path: Path) -> None:
    await seed(pg_fresh, slow=SLOW, quick=QUICK)
    runtime = await runtime_on(proxy.url(_db(pg_fresh)), db_retry=0.5)
    journal = RunJournal(runtime.settings.journal_path)
    run = asyncio.create_task(run_model(runtime.ctx, "slow"))
    while not await _runs(_db(pg_fresh)):  # started: its row is written (the model sleeps)
        await asyncio.sleep(0.02)
    proxy.block()  # down, and staying down past the retries
    with pytest.raises(RecordJournaled) as kept:
        await run
    message = str(kept.value)
    assert "\n" not in message and str(journal.path) in message and "unreachable" in message
    lines = journal.path.read_text().splitlines()
    assert len(lines) == 1 and '"status":"succeeded"' in lines[0]
    (run_id,) = (await _runs(_db(pg_fresh))).keys()
    assert (await _runs(_db(pg_fresh)))[run_id] == "running"

    proxy.unblock()
    after, _ = await run_model(runtime.ctx, "quick")  # the next connection replays it
    assert await _runs(_db(pg_fresh)) == {run_id: "succeeded", after.id.hex: "succeeded"}
    assert not journal.pending()

    # Replayed again (a crash after writing, before emptying): nothing changes.
    journal.path.write_text(lines[0].replace('"status":"succeeded"', '"status":"failed"') + "\n")
    assert await runtime.ctx.run_log.replay() == 1
    assert (await _runs(_db(pg_fresh)))[run_id] == "succeeded"


async def test_the_journal_is_replayed_at_the_next_start(tmp_path: Path, runtime_on) -> None:
    """The same on the embedded SQLite: a journaled ending reaches the row when the next
    mer starts, and only once."""
    from mer.db.engine import create_engine
    from mer.db.run_log import SqlRunLog
    from mer.domain import RunRecord

    url = f"sqlite+aiosqlite:///{tmp_path / 'mer.db'}"
    await seed(url)
    engine = create_engine(url)
    log = SqlRunLog(engine)
    record = RunRecord(model="m", version="1", server="local", os_user="t")
    await log.start(record)
    await log.close()
    await engine.dispose()
    record.status, record.exit_code = RunStatus.SUCCEEDED, 0
    journal = RunJournal(tmp_path / "data" / "run-journal.jsonl")
    journal.append(record)
    journal.append(record)  # twice: still one ending

    runtime = await runtime_on(url)
    async with runtime.ctx.uow() as uow:
        runs = await uow.runs.query()
    assert [(r.id, r.status, r.exit_code) for r in runs] == [(record.id, RunStatus.SUCCEEDED, 0)]
    assert not journal.pending()


def test_a_shell_started_while_the_database_was_down_works_once_it_is_up(
        pg_fresh: str, proxy, tmp_path: Path) -> None:
    from tests.shell.conftest import BIN, Mer

    env = Mer(tmp_path, pg_fresh).env  # migrated, with the example catalog
    env["MER_DATABASE_URL"] = proxy.url(_db(pg_fresh))
    proxy.block()
    mer = subprocess.Popen([str(BIN / "mer")], env=env, text=True, stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        mer.stdin.write("models\n")
        mer.stdin.flush()
        ready, _, _ = select.select([mer.stderr], [], [], 60)
        assert ready, "no error while the database was down"
        assert "cannot reach the database" in mer.stderr.readline()
        proxy.unblock()
        out, err = mer.communicate("models\n", timeout=60)
    finally:
        if mer.poll() is None:
            mer.kill()
    assert "linear" in out, err  # the second `models` reached the database
    assert mer.returncode == 1  # the first one failed


async def test_concurrent_runs_write_on_spare_connections_and_survive_a_blink(pg_fresh: str) -> None:
    """A batch's runs write at once: while one write is in flight on the run log's
    connection the others go on spares (not one at a time), and a dropped database
    connection under them is replaced like the main one."""
    import asyncio

    from mer.db.engine import create_engine
    from mer.db.run_log import SPARE_CONNECTIONS, SqlRunLog
    from mer.domain import RunRecord
    from tests.fixtures_pg import migrate

    await migrate(pg_fresh)
    engine = create_engine(pg_fresh)
    log = SqlRunLog(engine, retry_for=10)
    try:
        async def many() -> list[RunRecord]:
            records = [RunRecord(model="m", version="1", server="local", os_user="t") for _ in range(8)]
            await asyncio.gather(*(log.start(r) for r in records))
            return records

        first = await many()
        assert len(log._spares) == SPARE_CONNECTIONS  # the writes went on more connections
        assert await _terminate_backends(_db(pg_fresh)) >= 1 + SPARE_CONNECTIONS
        second = await many()
        rows = await _runs(_db(pg_fresh))
        assert sorted(rows) == sorted(r.id.hex for r in first + second)
    finally:
        await log.close()
        await engine.dispose()
