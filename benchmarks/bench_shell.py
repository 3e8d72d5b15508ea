"""The shell's own cost against a bare cmd2 app and a raw spawn, measured in one run.

1. cold start: `mer -c quit` vs a bare cmd2 app running `quit` (medians of whole
   processes). Target <= 1.3x.
2. 10,000 piped non-run commands (`workers`, which prints a table header) vs 10,000 piped
   commands of a bare cmd2 app's argparse command printing one line (every mer command
   is argparse-based). Target: throughput >= 0.5x the bare app's, per command once
   running (the wall time including the start is printed too).
3. `run` of a model whose command is `true`, in one mer process, access log included
   (two SQLite transactions per run) vs a raw asyncio spawn of `true` with the JSON
   request on stdin plus two sqlite3 writes, the medians of alternating rounds
   (1,000 runs a round, so the start of a process weighs little).
   Target <= 1.5x.

    .venv/bin/python benchmarks/bench_shell.py
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

BIN = Path(sys.executable).parent
BARE = """
import sys, argparse, cmd2
parser = cmd2.Cmd2ArgumentParser(description="ping")
parser.add_argument("--json", action="store_true")
class App(cmd2.Cmd):
    @cmd2.with_argparser(parser)
    def do_ping(self, _):
        self.stdout.write("pong\\n")
app = App(allow_cli_args=False)
if len(sys.argv) > 1:
    app.onecmd_plus_hooks(sys.argv[1])
else:
    for line in sys.stdin:
        app.onecmd_plus_hooks(line)
"""


def timed(cmd: list[str], env: dict[str, str], stdin: str | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, input=stdin, text=True, check=True, capture_output=True)
    return time.perf_counter() - t0


async def raw_runs(db: Path, n: int) -> float:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE IF NOT EXISTS runs (id TEXT PRIMARY KEY, status TEXT, code INT)")
    payload = (json.dumps({"model": "t", "version": "1", "parameters": {}, "weights": {},
                           "input": None}) + "\n").encode()
    t0 = time.perf_counter()
    for _ in range(n):
        rid = uuid.uuid4().hex
        conn.execute("INSERT INTO runs VALUES (?, 'running', NULL)", (rid,))
        proc = await asyncio.create_subprocess_exec(
            "true", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, start_new_session=True)
        await proc.communicate(payload)
        conn.execute("UPDATE runs SET status='succeeded', code=? WHERE id=?", (proc.returncode, rid))
    conn.close()
    return (time.perf_counter() - t0) / n


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MER_")}
        env.update(MER_DATA_DIR=tmp, MER_ENV_FILE=str(Path(tmp) / "none"))
        bare = Path(tmp) / "bare.py"
        bare.write_text(BARE)
        mer = str(BIN / "mer")
        subprocess.run([str(BIN / "mer-migrate"), "up"], env=env, check=True, capture_output=True)
        subprocess.run([mer, "--allow-edit", "-c", "server add local --kind local", "-c",
                        "model add t --server local --command true"], env=env, check=True,
                       capture_output=True)

        timed([mer, "-c", "quit"], env)
        timed([sys.executable, str(bare), "quit"], env)
        # Alternating, so that a drift of the machine's speed weighs on both alike.
        starts = [(timed([mer, "-c", "quit"], env), timed([sys.executable, str(bare), "quit"], env))
                  for _ in range(21)]
        mer_start = statistics.median(m for m, _ in starts)
        bare_start = statistics.median(b for _, b in starts)
        print("1. cold start")
        print(f"  bare cmd2 app                 {bare_start * 1000:8.1f} ms")
        ratio = mer_start / bare_start
        print(f"  mer -c quit                   {mer_start * 1000:8.1f} ms   {ratio:.2f}x "
              f"(target <= 1.3x: {'ok' if ratio <= 1.3 else 'over target'})")

        n = 10_000
        mer_one, bare_one = timed([mer], env, "workers\n"), timed([sys.executable, str(bare)], env, "ping\n")
        mer_pipe = timed([mer], env, "workers\n" * n)
        bare_pipe = timed([sys.executable, str(bare)], env, "ping\n" * n)
        # Throughput is per command once running: the start (mer's includes opening and
        # checking the database) is (1)'s business, so one command's run is taken off.
        mer_cmd, bare_cmd = (mer_pipe - mer_one) / (n - 1), (bare_pipe - bare_one) / (n - 1)
        thr = bare_cmd / mer_cmd
        print(f"2. {n} piped commands (wall time including the start; then per command once running)")
        print(f"  bare cmd2 app                 {bare_pipe:8.2f} s   {bare_cmd * 1e6:6.1f} us a command")
        print(f"  mer (workers)                 {mer_pipe:8.2f} s   {mer_cmd * 1e6:6.1f} us a command   "
              f"throughput {thr:.2f}x (target >= 0.5x: {'ok' if thr >= 0.5 else 'under target'}; "
              f"{bare_pipe / mer_pipe:.2f}x counting the start)")

        # Rounds alternate between the two, and the medians are compared: this machine's
        # speed drifts by tens of percent over seconds.
        runs, rounds = 1000, 5
        script = "run t\n" * runs
        per_runs, raws = [], []
        for _ in range(rounds):
            one = timed([mer], env, "run t\n")
            per_runs.append((timed([mer], env, script) - one) / (runs - 1))
            raws.append(asyncio.run(raw_runs(Path(tmp) / "raw.db", runs)))
        per_run, raw = statistics.median(per_runs), statistics.median(raws)
        ratio = per_run / raw
        print(f"3. run of a `true` model, access log included ({runs} runs in one process, "
              f"median of {rounds} rounds)")
        print(f"  raw spawn + 2 sqlite3 writes  {raw * 1000:8.2f} ms")
        print(f"  mer run                       {per_run * 1000:8.2f} ms   {ratio:.2f}x "
              f"(target <= 1.5x: {'ok' if ratio <= 1.5 else 'over target'}; rounds "
              f"{min(per_runs) / max(raws):.2f}x to {max(per_runs) / min(raws):.2f}x)")


if __name__ == "__main__":
    main()
