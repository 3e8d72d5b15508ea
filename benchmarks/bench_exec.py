"""Executor overhead against raw baselines, measured in the same run (medians).

(a) local: raw asyncio spawn of `cat` with a JSON request on stdin vs LocalExecutor;
(b) ssh: raw paramiko exec on a reused TCP_NODELAY transport vs SshExecutor (alternated
    run by run), vs OpenSSH (a fresh `ssh host cmd`, and ControlMaster multiplexing),
    all as the same light user
    on a throwaway sshd on 127.0.0.1, all starting the program /bin/true the cheapest way
    a shell can (`exec /bin/true`). NOTE: not the bare word `true`: the remote shell runs
    that as a builtin and starts no program at all (0.4 ms less here), while a model is
    always a program that has to be started; the builtin is printed for reference;
(c) worker: one request round trip through the executor (local and ssh) vs a raw pipe
    echo (a line to a python process that echoes it back);
(d) container: ContainerExecutor running a `true` image (its /data mounts, the request
    on stdin, a name and labels, the output collected) vs a raw `podman run --rm IMAGE
    true`, alternated run by run (podman's own time varies a lot on a busy host). The
    image is built here as the tests build it (tests/fixtures_podman.py).
Targets: local <= 1.3x raw; ssh <= 1.3x raw paramiko (and >= 2x faster than
ControlMaster); worker <= 2x raw pipe echo; container <= 1.2x raw podman.

    .venv/bin/python benchmarks/bench_exec.py [--n 200] [--container-n 30]
        [--only local,ssh,container]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import paramiko

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mer.domain import ContainerSpec, RunRequest, Server  # noqa: E402
from mer.execution.container import ContainerExecutor  # noqa: E402
from mer.execution.local import LocalExecutor  # noqa: E402
from mer.execution.ssh import SshExecutor  # noqa: E402
from tests.fixtures_podman import CONTAINERS_CONF, IMAGE, _rootfs_tar  # noqa: E402
from tests.fixtures_sshd import start_sshd  # noqa: E402

PAYLOAD = {"model": "m", "version": "1", "parameters": {}, "weights": {}, "input": {"x": [1, 2]}}
ECHO_WORKER = (
    "import sys, json\nprint(json.dumps({'ready': True}), flush=True)\n"
    "for line in sys.stdin:\n    r = json.loads(line)\n"
    "    print(json.dumps({'id': r['id'], 'result': r['input']}), flush=True)\n"
)
RAW_ECHO = "import sys\nfor line in sys.stdin:\n    sys.stdout.write(line); sys.stdout.flush()\n"


async def median_of(n: int, fn) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def median_sync(n: int, fn) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def line(name: str, value: float, base: float | None = None, target: float | None = None,
         note: str = "") -> None:
    text = f"  {name:48} {value * 1000:8.3f} ms"
    if base is not None:
        ratio = value / base
        text += f"   {ratio:5.2f}x"
        if target is not None:
            text += f" (target <= {target}x: {'ok' if ratio <= target else 'over target'})"
    print(text + (f"  {note}" if note else ""))


async def local(n: int) -> None:
    data = (json.dumps(PAYLOAD) + "\n").encode()

    async def raw() -> None:
        proc = await asyncio.create_subprocess_exec(
            "cat", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, start_new_session=True)
        out, _ = await proc.communicate(data)
        assert out == data

    ex = LocalExecutor()
    server = Server(name="local")
    req = RunRequest("cat", "1", ["cat"], PAYLOAD)

    async def mer() -> None:
        r = await ex.run(req, server)
        assert r.ok

    await median_of(20, raw)
    await median_of(20, mer)
    raw_t = await median_of(n, raw)
    mer_t = await median_of(n, mer)
    print("(a) local one-shot run of `cat` with the JSON request")
    line("raw asyncio spawn + pipes", raw_t)
    line("LocalExecutor.run", mer_t, raw_t, 1.3)

    wreq = RunRequest("w", "1", [sys.executable, "-c", ECHO_WORKER], PAYLOAD, mode="worker")
    await ex.run(wreq, server)
    worker_t = await median_of(n * 5, lambda: ex.run(wreq, server))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", RAW_ECHO, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert proc.stdin and proc.stdout

    async def echo() -> None:
        proc.stdin.write(data)
        await proc.stdin.drain()
        await proc.stdout.readline()

    echo_t = await median_of(n * 5, echo)
    proc.stdin.close()
    await proc.wait()
    await ex.close()
    print("(c) worker request round trip, local")
    line("raw pipe echo (one line each way)", echo_t)
    line("LocalExecutor worker request", worker_t, echo_t, 2.0)


def paramiko_transport(s: Server) -> paramiko.Transport:
    sock = socket.create_connection((s.host, s.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    t = paramiko.Transport(sock)
    t.start_client()
    t.auth_publickey(s.user, paramiko.PKey.from_path(s.identity_file))
    return t


def raw_exec(t: paramiko.Transport, cmd: str) -> None:
    chan = t.open_session()
    chan.exec_command(cmd)
    while chan.recv(65536):
        pass
    chan.recv_exit_status()
    chan.close()


async def ssh(n: int) -> None:
    sshd = start_sshd()
    try:
        s = sshd.server
        t = paramiko_transport(s)
        builtin_t = median_sync(n, lambda: raw_exec(t, "true"))
        ex = SshExecutor()
        req = RunRequest("true", "1", ["/bin/true"], PAYLOAD)

        async def mer() -> None:
            r = await ex.run(req, s)
            assert r.ok, r.error

        # Alternated run by run, as (d) does: on a busy host the time of each varies
        # more from one second to the next than between the two.
        raws: list[float] = []
        mers: list[float] = []
        for i in range(n + 10):
            t0 = time.perf_counter()
            raw_exec(t, "exec /bin/true")
            t1 = time.perf_counter()
            await mer()
            if i >= 10:  # warm-up
                raws.append(t1 - t0)
                mers.append(time.perf_counter() - t1)
        raw_t, mer_t = statistics.median(raws), statistics.median(mers)
        opts = ["-i", str(s.identity_file), "-p", str(s.port), "-o", f"UserKnownHostsFile={s.known_hosts}",
                "-o", "BatchMode=yes", f"{s.user}@{s.host}"]
        fresh_t = median_sync(max(5, n // 20), lambda: subprocess.run(["ssh", *opts, "exec /bin/true"], check=True))
        control = sshd.root / "cm.sock"
        cm = ["-o", "ControlMaster=auto", "-o", f"ControlPath={control}", "-o", "ControlPersist=60"]
        subprocess.run(["ssh", *cm, *opts, "exec /bin/true"], check=True)
        cm_t = median_sync(n, lambda: subprocess.run(["ssh", *cm, *opts, "exec /bin/true"], check=True))
        subprocess.run(["ssh", *cm, "-O", "exit", *opts], capture_output=True)
        print("(b) ssh run of /bin/true on 127.0.0.1 (user with a light shell startup)")
        line("raw paramiko, reused transport, TCP_NODELAY", raw_t)
        line("  the same running the shell builtin `true`", builtin_t, raw_t, None, "(no program started)")
        line("SshExecutor.run", mer_t, raw_t, 1.3)
        line("OpenSSH ControlMaster (multiplexed)", cm_t, raw_t, None,
             f"SshExecutor is {cm_t / mer_t:.1f}x faster (target >= 2x)")
        line("OpenSSH fresh connection", fresh_t, raw_t, None, f"SshExecutor is {fresh_t / mer_t:.0f}x faster")

        data = (json.dumps(PAYLOAD) + "\n").encode()
        wreq = RunRequest("w", "1", ["python3", "-c", ECHO_WORKER], PAYLOAD, mode="worker")
        await ex.run(wreq, s)
        worker_t = await median_of(n * 2, lambda: ex.run(wreq, s))
        chan = t.open_session()
        chan.exec_command(f"python3 -c {shlex.quote(RAW_ECHO)}")

        def echo() -> None:
            chan.sendall(data)
            got = b""
            while not got.endswith(b"\n"):
                chunk = chan.recv(65536)
                if not chunk:
                    raise RuntimeError("the raw echo process ended")
                got += chunk

        echo()
        echo_t = median_sync(n * 2, echo)
        chan.close()
        await ex.close()
        t.close()
        print("(c) worker request round trip, ssh")
        line("raw paramiko channel echo (one line each way)", echo_t)
        line("SshExecutor worker request", worker_t, echo_t, 2.0)
    finally:
        sshd.cleanup()


async def container(n: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="mer-bench-podman-"))
    try:
        if "CONTAINERS_CONF" not in os.environ:  # runc and cgroupfs, as README says
            (root / "containers.conf").write_text(CONTAINERS_CONF)
            os.environ["CONTAINERS_CONF"] = str(root / "containers.conf")
        with _rootfs_tar(root).open("rb") as fh:
            subprocess.run(["podman", "import", "-q", "-", IMAGE], stdin=fh, check=True,
                           capture_output=True)

        async def podman_run(*options: str) -> None:
            proc = await asyncio.create_subprocess_exec(
                "podman", "run", "--rm", *options, IMAGE, "true", stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            await proc.communicate()
            assert proc.returncode == 0

        async def raw() -> None:
            await podman_run()

        async def raw_none() -> None:  # mer's default network: no network setup
            await podman_run("--network", "none")

        ex = ContainerExecutor()
        server = Server(name="box", kind="container")

        async def mer() -> None:
            req = RunRequest("true", "1", ["true"], PAYLOAD, container=ContainerSpec(IMAGE),
                             output_dir=str(root / "artifacts" / "run"))
            r = await ex.run(req, server)
            assert r.ok, r.error

        kinds = (raw, raw_none, mer)
        for _ in range(3):
            for fn in kinds:
                await fn()
        times: dict[object, list[float]] = {fn: [] for fn in kinds}
        for _ in range(n):
            for fn in kinds:
                t0 = time.perf_counter()
                await fn()
                times[fn].append(time.perf_counter() - t0)
        await ex.close()
        raw_t, none_t, mer_t = (statistics.median(times[fn]) for fn in kinds)
        print(f"(d) container run of a `true` image ({n} each, alternated)")
        line("raw podman run --rm IMAGE true", raw_t)
        line("  the same with --network none", none_t, raw_t, None,
             "(mer's default network: no network to set up)")
        line("ContainerExecutor.run", mer_t, raw_t, 1.2)
        line("ContainerExecutor.run vs --network none", mer_t, none_t, 1.2)
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200, help="runs per measurement")
    parser.add_argument("--container-n", type=int, default=30, help="container runs of each kind")
    parser.add_argument("--only", default="local,ssh,container", help="parts to run")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    if "local" in parts:
        await local(args.n)
    if "ssh" in parts:
        await ssh(args.n)
    if "container" in parts:
        await container(args.container_n)


if __name__ == "__main__":
    asyncio.run(main())
