"""Every string mer stores or prints is valid UTF-8 (issue 9): a model's result holding
a lone surrogate (Python's fsdecode of a non-UTF-8 file name) completes its row on
PostgreSQL, which refused it, and prints as valid UTF-8 from SQLite, which kept it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mer.domain import RunStatus
from mer.services.runs import get_run, run_model
from tests.faults.conftest import seed

# Prints {"file": "caf\udce9.txt", "caf\udce9": 1}: the name of a Latin-1 file, as Python sees it.
SURROGATE = [sys.executable, "-c",
             "import json, os, sys; sys.stdin.read(); name = os.fsdecode(b'caf\\xe9.txt');"
             "print(json.dumps({'file': name, name[:4]: 1, 'error': 'x' + name}))"]


async def test_a_result_with_lone_surrogates_is_stored_as_valid_text(db_url: str, runtime_on) -> None:
    await seed(db_url, latin=SURROGATE)
    runtime = await runtime_on(db_url)
    record, result = await run_model(runtime.ctx, "latin")
    assert result is not None and result.result["file"] == "caf\udce9.txt"  # as the model said
    stored = await get_run(runtime.ctx, record.id.hex)
    assert stored.status is RunStatus.SUCCEEDED  # was: left running on PostgreSQL
    assert stored.result == {"file": "caf\ufffd.txt", "caf\ufffd": 1, "error": "xcaf\ufffd.txt"}
    json.dumps(stored.result, ensure_ascii=False).encode("utf-8")  # valid UTF-8 through and through


def test_runs_show_json_prints_valid_utf8_even_for_an_old_row(tmp_path: Path) -> None:
    """A row written before this fix still holds the surrogate in SQLite's JSON text."""
    import sqlite3
    import uuid

    from tests.shell.conftest import Mer

    mer = Mer(tmp_path)
    db = sqlite3.connect(tmp_path / "data" / "mer.db")
    run_id = uuid.uuid4()
    db.execute("INSERT INTO access_log (id, model, version, server, os_user, kind, weight_revisions,"
               " status, started_at, bytes_in, bytes_out, stdout, stderr, result)"
               " VALUES (?, 'echo', '1', 'local', 't', 'run', '{}', 'succeeded',"
               " '2026-11-29 10:00:00.000000', 0, 0, '', '', ?)",
               (run_id.hex, json.dumps({"file": "caf\udce9.txt"})))
    db.commit()
    db.close()
    done = mer.main("--json", "-c", f"runs show {run_id.hex[:8]}")
    assert done.returncode == 0, done.stderr
    # Strict: a lone surrogate cannot be encoded (a real stdout would have raised).
    shown = json.loads(done.stdout.encode("utf-8"))
    assert shown["result"] == {"file": "caf\ufffd.txt"}
