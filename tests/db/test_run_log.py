"""The run log (the access log's hot path) and the catalog generation, on SQLite and on
the real PostgreSQL."""

from __future__ import annotations

from array import array

from mer.db.run_log import SqlRunLog
from mer.domain import ModelConfig, ModelParameters, RunKind, RunRecord, RunStatus, Server, utcnow


async def test_every_catalog_change_moves_the_generation_and_runs_do_not(engine, uow_factory) -> None:
    log = SqlRunLog(engine)
    seen = [await log.catalog_generation()]

    async def changed(edit) -> None:  # noqa: ANN001
        async with uow_factory() as uow:
            await edit(uow)
            await uow.commit()
        seen.append(await log.catalog_generation())
        assert seen[-1] != seen[-2], f"{edit.__name__} did not move the generation"

    async def add_server(uow) -> None:  # noqa: ANN001
        await uow.servers.add(Server(name="local"))

    async def add_model(uow) -> None:  # noqa: ANN001
        await uow.models.add(ModelConfig(name="m", server="local", command=["true"]))

    async def update_model(uow) -> None:  # noqa: ANN001
        model = await uow.models.get("m")
        model.command = ["false"]
        await uow.models.update(model)

    async def set_parameters(uow) -> None:  # noqa: ANN001
        model = await uow.models.get("m")
        await uow.parameters.set(ModelParameters(model.id, {"k": 1}, 0))

    async def append_weights(uow) -> None:  # noqa: ANN001
        model = await uow.models.get("m")
        await uow.weights.append(model.id, "w", array("d", [1.0]), "t")

    async def update_server(uow) -> None:  # noqa: ANN001
        server = await uow.servers.get("local")
        server.max_runs = 2
        await uow.servers.update(server)

    async def remove_model(uow) -> None:  # noqa: ANN001
        await uow.models.remove((await uow.models.get("m")).id)

    try:
        for edit in (add_server, add_model, update_model, set_parameters, append_weights,
                     update_server, remove_model):
            await changed(edit)
        record = RunRecord(model="m", version="1", server="local", os_user="t", kind=RunKind.RUN)
        assert await log.start(record) == seen[-1]  # the insert tells the generation too
        record.status, record.finished_at = RunStatus.SUCCEEDED, utcnow()
        await log.update(record)
        assert await log.catalog_generation() == seen[-1]  # the access log is not the catalog
        async with uow_factory() as uow:  # a rolled back edit changes nothing
            await uow.servers.add(Server(name="gone"))
        assert await log.catalog_generation() == seen[-1]
    finally:
        await log.close()


async def test_rows_written_by_the_run_log_read_back_through_the_repository(engine, uow_factory) -> None:
    log = SqlRunLog(engine)
    try:
        record = RunRecord(model="m", version="2", server="local", os_user="t", kind=RunKind.TRAIN,
                           weight_revisions={"w": 3})
        await log.start(record)  # committed at once: another session sees it running
        async with uow_factory() as uow:
            running = await uow.runs.get(record.id)
        assert running.status is RunStatus.RUNNING and running.finished_at is None
        assert running.started_at == record.started_at and running.weight_revisions == {"w": 3}

        record.status, record.exit_code, record.finished_at = RunStatus.FAILED, 3, utcnow()
        record.stdout, record.stderr = "out\x00put\n", "é"
        record.bytes_in, record.bytes_out, record.error = 10, 20, "exit status 3"
        record.result = {"y": [1.5, None], "ok": False, "k\x00": ["a\x00b"]}  # JSONB refuses NUL
        record.version, record.server = "3", "gpu"  # a row rewritten before the model started
        await log.update(record)
        async with uow_factory() as uow:
            done = await uow.runs.get(str(record.id)[:8])
        assert (done.version, done.server) == ("3", "gpu")
        assert (done.id, done.kind, done.status, done.exit_code) == (record.id, RunKind.TRAIN,
                                                                    RunStatus.FAILED, 3)
        assert done.finished_at == record.finished_at and done.finished_at.tzinfo is not None
        assert done.stdout == "out\ufffdput\n" and done.stderr == "é"
        assert (done.bytes_in, done.bytes_out, done.error) == (10, 20, "exit status 3")
        assert done.result == {"y": [1.5, None], "ok": False, "k\ufffd": ["a\ufffdb"]}
    finally:
        await log.close()


async def test_a_locked_sqlite_database_is_waited_for_off_the_loop(tmp_path) -> None:
    """The SQLite run log writes on the loop's thread only when no one holds the write
    lock; a held lock sends the write to aiosqlite's thread, and the loop goes on."""
    import asyncio
    import sqlite3

    from mer.db.engine import create_engine
    from mer.db.migrate import upgrade

    path = tmp_path / "mer.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await upgrade(engine)
    log = SqlRunLog(engine)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        first = RunRecord(model="m", version="1", server="local", os_user="t", kind=RunKind.RUN)
        generation = await log.start(first)  # the fast path, on the loop's thread
        other.execute("BEGIN IMMEDIATE")  # another writer holds the database
        record = RunRecord(model="m", version="1", server="local", os_user="t", kind=RunKind.RUN)
        write = asyncio.create_task(log.start(record))
        loop = asyncio.get_running_loop()
        gaps, last = [], loop.time()
        for _ in range(20):  # the loop goes on while the write waits for the lock
            await asyncio.sleep(0.01)
            gaps.append(loop.time() - last)
            last = loop.time()
        assert not write.done()
        # NOTE: not a speed check: a write that waited on the loop's thread would stall
        # it for the whole busy timeout (5 s).
        assert max(gaps) < 2.5
        other.execute("COMMIT")
        assert await asyncio.wait_for(write, 10) == generation
        rows = other.execute("SELECT id, status FROM access_log ORDER BY started_at").fetchall()
        assert [status for _, status in rows] == ["running", "running"]
        assert {row_id.replace("-", "") for row_id, _ in rows} == {first.id.hex, record.id.hex}
    finally:
        other.close()
        await log.close()
        await engine.dispose()


async def test_an_ending_is_written_at_once_unless_another_writer_holds_sqlite(tmp_path) -> None:
    """``update_at_once`` writes a run's ending on the loop's thread, without waiting;
    while another writer holds the database it writes nothing and says so, and
    ``update`` is then the way."""
    import sqlite3

    from mer.db.engine import create_engine
    from mer.db.migrate import upgrade

    path = tmp_path / "mer.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await upgrade(engine)
    log = SqlRunLog(engine)
    other = sqlite3.connect(path, isolation_level=None)

    def status() -> tuple[str, int | None]:
        return other.execute("SELECT status, exit_code FROM access_log").fetchone()

    try:
        record = RunRecord(model="m", version="1", server="local", os_user="t", kind=RunKind.RUN)
        await log.start(record)
        record.status, record.exit_code, record.finished_at = RunStatus.SUCCEEDED, 0, utcnow()
        other.execute("BEGIN IMMEDIATE")  # another writer holds the database
        assert log.update_at_once(record) is False
        assert status() == ("running", None)  # nothing written
        other.execute("COMMIT")
        assert log.update_at_once(record) is True
        assert status() == ("succeeded", 0)
    finally:
        other.close()
        await log.close()
        await engine.dispose()


async def test_the_run_logs_writes_leave_the_checkpoints_to_a_thread(tmp_path, monkeypatch) -> None:
    """A write on the loop's thread never checkpoints the WAL (that cost ~70 us of every
    run); a thread does, every EVERY writes, so the log is still copied back."""
    import sqlite3

    from mer.db import wal_checkpoints
    from mer.db.engine import create_engine
    from mer.db.migrate import upgrade

    monkeypatch.setattr(wal_checkpoints, "EVERY", 10)
    path = tmp_path / "mer.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await upgrade(engine)
    log = SqlRunLog(engine)
    watcher = sqlite3.connect(path, isolation_level=None)  # keeps the WAL from closing
    try:
        await log.start(RunRecord(model="m", version="1", server="local", os_user="t",
                                  kind=RunKind.RUN))
        inline = log._inline
        assert inline is not None
        assert inline.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
        size = path.stat().st_size
        for _ in range(10):  # 20 writes: two checkpoints due
            record = RunRecord(model="m", version="1", server="local", os_user="t", kind=RunKind.RUN)
            await log.start(record)
            record.status, record.finished_at = RunStatus.SUCCEEDED, utcnow()
            await log.update(record)
        log._checkpoints.close()  # waits for the one under way
        assert path.stat().st_size > size  # the rows reached the database file itself
        assert watcher.execute("SELECT count(*) FROM access_log").fetchone() == (11,)
    finally:
        watcher.close()
        await log.close()
        await engine.dispose()


async def test_a_driver_error_is_one_storage_error_line(engine) -> None:
    import pytest
    from sqlalchemy import text

    from mer.errors import StorageError

    log = SqlRunLog(engine)
    try:
        await log.catalog_generation()  # the connections are open
        async with engine.begin() as conn:
            await conn.execute(text("DROP TABLE access_log"))
        record = RunRecord(model="m", version="1", server="local", os_user="t", kind=RunKind.RUN)
        with pytest.raises(StorageError, match=r"^writing the access log failed: .*access_log") as err:
            await log.start(record)
        assert "\n" not in str(err.value)
    finally:
        await log.close()


async def test_an_ending_keeps_the_snapshot_the_start_wrote_and_writes_a_rebuilt_one(
        engine, uow_factory) -> None:
    log = SqlRunLog(engine)
    try:
        kept = RunRecord(model="m", version="1", server="local", os_user="t",
                         snapshot={"config": {"command": ["true"]}})
        rebuilt = RunRecord(model="m", version="1", server="local", os_user="t",
                            snapshot={"config": {"command": ["old"]}})
        for record in (kept, rebuilt):
            await log.start(record)
        rebuilt.snapshot = {"config": {"command": ["new"]}}  # the plan was read again
        await log.update(rebuilt)  # still running: the row says what really runs
        for record in (kept, rebuilt):
            record.status, record.finished_at = RunStatus.SUCCEEDED, utcnow()
            await log.update(record)
        async with uow_factory() as uow:
            got = {r.id: r for r in [await uow.runs.get(kept.id), await uow.runs.get(rebuilt.id)]}
        assert got[kept.id].snapshot == {"config": {"command": ["true"]}}
        assert got[rebuilt.id].snapshot == {"config": {"command": ["new"]}}
        assert {r.status for r in got.values()} == {RunStatus.SUCCEEDED}
    finally:
        await log.close()
