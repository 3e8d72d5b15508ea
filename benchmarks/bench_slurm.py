"""Slurm: mer's `run` of a `true` model through srun against a raw `srun true`, measured
alternately in the same run (medians).

(a) raw `srun true`, spawned from asyncio with its pipes (what any program pays);
(b) SlurmExecutor.run of a `true` model (the request on stdin, the job-id line, srun's
    options: --quiet, --ntasks=1, --job-name);
(c) the `run` use case (mer.services.runs.run_model on mer's runtime over an embedded
    SQLite database: the access-log row written and completed, then (b)).
Target: (c) <= 1.2x (a).

A throwaway one-node cluster is started as the tests start it (tests/fixtures_slurm.py),
unless --cluster-from-env: then SLURM_CONF (or the system's slurm.conf) names a running
cluster, and --partition may pick the partition.

    .venv/bin/python benchmarks/bench_slurm.py [--n 60] [--cluster-from-env] [--partition P]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_exec import line  # noqa: E402  (the same report lines)
from mer.bootstrap import build_runtime  # noqa: E402
from mer.config import Settings  # noqa: E402
from mer.domain import ModelConfig, RunRequest, Server  # noqa: E402
from mer.execution.slurm import SlurmExecutor  # noqa: E402
from mer.services import models as model_svc  # noqa: E402
from mer.services import servers as server_svc  # noqa: E402
from mer.services.runs import run_model  # noqa: E402
from tests.fixtures_slurm import start_cluster  # noqa: E402

PAYLOAD = {"model": "true", "version": "1", "parameters": {}, "weights": {}, "input": {"x": [1, 2]}}


async def measure(n: int, root: Path, partition: str | None) -> None:
    extra = [f"--partition={partition}"] if partition else []

    async def raw() -> None:
        proc = await asyncio.create_subprocess_exec(
            "srun", *extra, "true", stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        await proc.communicate()
        assert proc.returncode == 0

    server = Server(name="hpc", kind="slurm", partition=partition)
    ex = SlurmExecutor(data_dir=str(root / "data"))

    async def executor() -> None:
        r = await ex.run(RunRequest("true", "1", ["true"], PAYLOAD), server)
        assert r.ok, r.error

    settings = Settings(database_url=f"sqlite+aiosqlite:///{root / 'mer.db'}", data_dir=root / "data",
                        allow_edit=True)
    runtime = await build_runtime(settings)
    ctx = runtime.ctx
    await server_svc.add_server(ctx, server)
    await model_svc.add_model(ctx, ModelConfig(name="true", server="hpc", command=["true"]))

    async def mer_run() -> None:
        record, _ = await run_model(ctx, "true", input={"x": [1, 2]})
        assert str(record.status) == "succeeded", record.error

    kinds = (raw, executor, mer_run)
    try:
        for _ in range(3):
            for fn in kinds:
                await fn()
        times: dict[object, list[float]] = {fn: [] for fn in kinds}
        for _ in range(n):
            for fn in kinds:  # alternated: the cluster's own time drifts on a busy host
                t0 = time.perf_counter()
                await fn()
                times[fn].append(time.perf_counter() - t0)
    finally:
        await ex.close()
        await runtime.close()
    raw_t, ex_t, run_t = (statistics.median(times[fn]) for fn in kinds)
    print(f"Slurm: a `true` model through srun ({n} each, alternated)")
    line("(a) raw srun true", raw_t)
    line("(b) SlurmExecutor.run", ex_t, raw_t)
    line("(c) run (run_model: access log + executor)", run_t, raw_t, 1.2)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=60, help="runs of each kind")
    parser.add_argument("--cluster-from-env", action="store_true",
                        help="use the cluster SLURM_CONF names instead of a throwaway one")
    parser.add_argument("--partition", help="the partition to run in")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mer-bench-slurm-"))
    cluster = None
    try:
        if not args.cluster_from_env:
            cluster = start_cluster(root / "cluster")
            os.environ["SLURM_CONF"] = str(cluster.conf)
        await measure(args.n, root, args.partition)
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
