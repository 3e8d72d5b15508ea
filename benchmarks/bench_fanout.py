"""Batch fan-out throughput against raw baselines, measured in the same run.

(a) local: 1,000 runs of a `true` model through `run --batch` (mer/services/batch.py:
    the whole run path, each run its own access-log row in SQLite, at most 8 at once)
    vs raw asyncio spawning /bin/true with the same JSON request on stdin, 8 at once;
(b) ssh: 256 runs of /bin/true over 4 SSH servers (4 names of one throwaway sshd on
    127.0.0.1, max-runs 4 each: 16 at once) vs raw paramiko running `exec /bin/true`
    with the request on stdin on one reused transport, 16 at once (16 threads); mer
    pools the 4 names into one connection too, as they are one identity. The raw side's
    transport is mer's OrderedTransport (mer/execution/ssh_transport.py): plain paramiko
    sends a request after the server closed its channel now and then, and OpenSSH then
    drops the whole connection (it did here within a few hundred runs).
Both log in as the test fixture's light-startup user when run as root.
Targets: mer's throughput >= 0.7x raw, both.

    .venv/bin/python benchmarks/bench_fanout.py [--local-n 1000] [--ssh-n 256] [--only local,ssh]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import paramiko

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mer.bootstrap import build_runtime  # noqa: E402
from mer.config import Settings  # noqa: E402
from mer.db.engine import create_engine  # noqa: E402
from mer.db.migrate import upgrade  # noqa: E402
from mer.db.uow import make_uow_factory  # noqa: E402
from mer.domain import ModelConfig, Server  # noqa: E402
from mer.execution.ssh_transport import OrderedTransport  # noqa: E402
from mer.services import batch as batch_svc  # noqa: E402
from tests.fixtures_sshd import start_sshd  # noqa: E402

TRUE = shutil.which("true") or "/bin/true"
REQUEST = (json.dumps({"model": "true", "version": "1", "run_id": "0" * 32, "parameters": {},
                       "weights": {}, "input": {"i": 0}}) + "\n").encode()


def line(name: str, runs: int, seconds: float, base: float | None = None, target: float = 0.7) -> None:
    rate = runs / seconds
    text = f"  {name:52} {rate:8.0f} runs/s  ({seconds:6.2f} s for {runs})"
    if base is not None:
        ratio = base / seconds  # mer's throughput relative to raw's
        text += f"   {ratio:4.2f}x raw (target >= {target}x: {'ok' if ratio >= target else 'UNDER TARGET'})"
    print(text)


PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
USE_POSTGRES = [False]  # --postgres
MADE: list[str] = []  # the throwaway PostgreSQL databases, dropped at the end


async def _database(root: Path, servers: list[Server], models: list[ModelConfig]) -> Settings:
    """A new database (SQLite in ``root``, or with --postgres a new PostgreSQL one)."""
    url = f"sqlite+aiosqlite:///{root / 'mer.db'}"
    if USE_POSTGRES[0]:
        import asyncpg

        name = f"mer_bench_fanout_{os.getpid()}_{len(MADE)}"
        admin = await asyncpg.connect(PG_ADMIN, timeout=3)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        MADE.append(name)
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    engine = create_engine(url)
    try:
        await upgrade(engine)
        async with make_uow_factory(engine)() as uow:
            for s in servers:
                await uow.servers.add(s)
            for m in models:
                await uow.models.add(m)
            await uow.commit()
    finally:
        await engine.dispose()
    return Settings(database_url=url, data_dir=root / "data", known_hosts=root / "known_hosts")


class MerBatch:
    """`run MODEL --batch` as the shell runs it (mer/services/batch.py on mer's runtime)."""

    def __init__(self, settings: Settings, parallel: int | None, servers: list[str] | None) -> None:
        self.settings, self.parallel, self.servers = settings, parallel, servers

    async def __aenter__(self) -> MerBatch:
        self.runtime = await build_runtime(self.settings)
        await self.run(self.parallel or 16)  # warm: the plan cached, connections open
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runtime.close()

    async def run(self, n: int) -> float:
        items = batch_svc.plan_items(inputs=[{"i": i} for i in range(n)])
        t0 = time.perf_counter()
        report = await batch_svc.run_batch(self.runtime.ctx, "true", items, parallel=self.parallel,
                                           servers=self.servers)
        elapsed = time.perf_counter() - t0
        assert report.ok and len(report.outcomes) == n, [o.image() for o in report.outcomes if not o.ok][:3]
        return elapsed


async def alternated(n: int, rounds: int, raw, mer) -> tuple[float, float]:
    """Total seconds of each for ``n`` runs, in ``rounds`` alternated chunks: the machine
    is shared, and a load that comes and goes falls on both sides alike."""
    chunk = n // rounds
    raw_t = mer_t = 0.0
    for _ in range(rounds):
        raw_t += await raw(chunk)
        mer_t += await mer(chunk)
    return raw_t, mer_t


async def raw_local(n: int, parallel: int) -> float:
    gate = asyncio.Semaphore(parallel)

    async def one() -> None:
        async with gate:
            proc = await asyncio.create_subprocess_exec(
                TRUE, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, start_new_session=True)
            try:
                await proc.communicate(REQUEST)
            except (BrokenPipeError, ConnectionResetError):
                await proc.wait()
            assert proc.returncode == 0

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return time.perf_counter() - t0


async def local(n: int, rounds: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="mer-bench-fanout-"))
    try:
        settings = await _database(root, [Server(name="local", max_runs=8)],
                                   [ModelConfig(name="true", server="local", command=[TRUE])])
        async with MerBatch(settings, 8, None) as mer:
            await raw_local(16, 8)
            raw_t, mer_t = await alternated(n, rounds, lambda k: raw_local(k, 8), mer.run)
        runs = n // rounds * rounds
        print(f"(a) local: {runs} runs of `true`, 8 at once ({rounds} alternated rounds)")
        line("raw asyncio spawn + pipes", runs, raw_t)
        line(f"run --batch --parallel 8 (access log in {'PostgreSQL' if USE_POSTGRES[0] else 'SQLite'})",
             runs, mer_t, raw_t)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _transport(s: Server) -> paramiko.Transport:
    sock = socket.create_connection((s.host, s.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    t = OrderedTransport(sock)
    t.start_client()
    t.auth_publickey(s.user, paramiko.PKey.from_path(s.identity_file))
    return t


def _raw_exec(t: paramiko.Transport) -> None:
    chan = t.open_session()
    chan.exec_command("exec /bin/true")
    try:
        chan.sendall(REQUEST)
        chan.shutdown_write()
    except OSError:
        pass
    while chan.recv(65536):
        pass
    assert chan.recv_exit_status() == 0
    chan.close()


def raw_ssh(t: paramiko.Transport, pool: concurrent.futures.ThreadPoolExecutor, n: int) -> float:
    t0 = time.perf_counter()
    list(pool.map(lambda _: _raw_exec(t), range(n)))
    return time.perf_counter() - t0


async def ssh(n: int, rounds: int) -> None:
    sshd = start_sshd()
    root = Path(tempfile.mkdtemp(prefix="mer-bench-fanout-"))
    try:
        names = [f"ssh{i}" for i in range(4)]
        servers = [replace(sshd.server, name=name, max_runs=4) for name in names]
        settings = await _database(root, [Server(name="local"), *servers],
                                   [ModelConfig(name="true", server=names[0], command=["/bin/true"])])
        t = _transport(sshd.server)
        pool = concurrent.futures.ThreadPoolExecutor(16)
        loop = asyncio.get_running_loop()

        async def raw(k: int) -> float:
            return await loop.run_in_executor(None, raw_ssh, t, pool, k)

        try:
            async with MerBatch(settings, None, names) as mer:
                await raw(16)
                raw_t, mer_t = await alternated(n, rounds, raw, mer.run)
        finally:
            pool.shutdown()
            t.close()
        runs = n // rounds * rounds
        print(f"(b) ssh: {runs} runs of /bin/true over 4 server names of one sshd, 16 at once "
              f"({rounds} alternated rounds)")
        line("raw paramiko, one transport, 16 threads", runs, raw_t)
        line("run --batch --servers ssh0,ssh1,ssh2,ssh3", runs, mer_t, raw_t)
    finally:
        sshd.cleanup()
        shutil.rmtree(root, ignore_errors=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--local-n", type=int, default=1000)
    parser.add_argument("--ssh-n", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=4, help="alternated chunks of each")
    parser.add_argument("--only", default="local,ssh")
    parser.add_argument("--postgres", action="store_true",
                        help="the access log in PostgreSQL at 127.0.0.1:5432 (a throwaway database)")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    USE_POSTGRES[0] = args.postgres
    try:
        if "local" in parts:
            await local(args.local_n, args.rounds)
        if "ssh" in parts:
            await ssh(args.ssh_n, args.rounds)
    finally:
        if MADE:
            import asyncpg

            admin = await asyncpg.connect(PG_ADMIN, timeout=3)
            try:
                for name in MADE:
                    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
