"""A real one-node Slurm cluster (Debian's slurm-wlm and munge), configured under a temp
directory: munged on its own key and socket, slurmctld and slurmd on free ports.

``slurm_cluster`` (session scope) yields a ``SlurmCluster`` with ``.conf`` (its slurm.conf;
SLURM_CONF is set in this process's environment, so every Slurm client command mer
starts here uses it), ``.partition``, ``.jobs(name)`` (what squeue lists) and
``.processes(marker)`` (pids whose command line holds ``marker``). ``slurm_login`` is the
same cluster seen from a "login node": a test sshd whose sessions have its SLURM_CONF.

pytest-xdist's workers share one cluster (a node runs one slurmd): the first worker to
take the lock starts it, each worker counts itself in, and the last one out checks that
no job is left and stops it. Without slurm-wlm or munge the tests skip, except under
CI=true, where they fail.

The config is what a laptop cluster needs and no more: proctrack/linuxproc and
task/none (no cgroups), no accounting (sacct needs slurmdbd), jobcomp/filetxt (the final
state of every job, for a person reading why a test failed).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from mer.domain import Server
from tests.conftest import skip_or_fail

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("srun", "sbatch", "squeue", "scancel", "sinfo")
PARTITION = "mer"


def _which(program: str) -> str | None:
    return shutil.which(program) or next(
        (p for p in (f"/usr/sbin/{program}", f"/sbin/{program}") if os.access(p, os.X_OK)), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _memory_mb() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024 - 256
    return 1024


@dataclass
class SlurmCluster:
    root: Path
    partition: str = PARTITION

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def jobs(self, name: str | None = None) -> list[str]:
        """``JOBID STATE`` of the jobs squeue lists (pending, running, completing)."""
        argv = ["squeue", "-h", "-o", "%i %T"] + (["-n", name] if name else [])
        out = subprocess.run(argv, capture_output=True, text=True, env=self.env(), check=True)
        return out.stdout.split("\n")[:-1]

    def drained(self, timeout: float = 30.0) -> list[str]:
        """The jobs still listed after ``timeout`` seconds: a job whose model just ended
        (a detached run's exit file is written before its batch script returns) takes a
        moment to leave the queue; a job left running never does."""
        deadline = time.monotonic() + timeout
        while (left := self.jobs()) and time.monotonic() < deadline:
            time.sleep(0.1)
        return left

    def processes(self, marker: str) -> list[int]:
        """Pids of live processes whose command line holds ``marker``."""
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            with contextlib.suppress(OSError):
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                stat = Path(f"/proc/{pid}/stat").read_bytes()
                if marker.encode() in cmdline and stat.rsplit(b")", 1)[-1].split()[0] != b"Z":
                    found.append(int(pid))
        return found

    def wait_idle(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            done = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True,
                                  env=self.env())
            state = done.stdout.strip() or done.stderr.strip()
            if done.returncode == 0 and state in ("idle", "mix", "alloc"):
                return
            time.sleep(0.1)
        logs = "".join((self.root / f).read_text(errors="replace")[-1500:]
                       for f in ("slurmctld.log", "slurmd.log") if (self.root / f).exists())
        raise RuntimeError(f"the test Slurm node did not come up ({state}): {logs}")

    def stop(self) -> None:
        for name in ("slurmd", "slurmctld", "munged"):
            pidfile = self.root / f"{name}.pid"
            with contextlib.suppress(OSError, ValueError):
                pid = int(pidfile.read_text())
                os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and Path(f"/proc/{pid}").exists() \
                        and b") Z" not in Path(f"/proc/{pid}/stat").read_bytes():
                    time.sleep(0.05)


def _write_config(root: Path) -> None:
    host = socket.gethostname().split(".")[0]
    cpus = os.cpu_count() or 1
    (root / "slurm.conf").write_text(f"""ClusterName=mertest
SlurmctldHost=localhost
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/run/munge.sock
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc={root}/jobcomp.txt
SchedulerType=sched/builtin
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
KillWait=2
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={_memory_mb()} State=UNKNOWN
PartitionName={PARTITION} Nodes={host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:16
""")


def start_cluster(root: Path) -> SlurmCluster:
    """Configure and start munged, slurmctld and slurmd under ``root`` (also used by
    benchmarks/bench_slurm.py); ``stop`` it."""
    for sub in ("state", "spool", "munge", "run"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    # Every user may reach munged's socket (the test sshd logs in as another user);
    # only root reads its key.
    for path in (root, root / "run"):
        path.chmod(0o755)
    (root / "munge").chmod(0o700)
    key = root / "munge" / "munge.key"
    if not key.exists():
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
    _write_config(root)
    cluster = SlurmCluster(root)
    env = cluster.env()
    subprocess.run([_which("munged") or "munged", "--force", f"--socket={root}/run/munge.sock",
                    f"--key-file={key}", f"--pid-file={root}/munged.pid",
                    f"--log-file={root}/munge/munged.log", f"--seed-file={root}/munge/seed"],
                   check=True, env=env)
    for daemon in ("slurmctld", "slurmd"):
        subprocess.run([_which(daemon) or daemon, "-f", str(cluster.conf)], check=True, env=env)
    try:
        cluster.wait_idle()
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _shared_root() -> Path:
    # One directory per test run: xdist's workers share PYTEST_XDIST_TESTRUNUID.
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"pid{os.getpid()}"
    return Path(tempfile.gettempdir()) / f"mer-slurm-{run}"


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _users(root: Path, delta: int) -> int:
    path = root / "users"
    count = int(path.read_text() or 0) if path.exists() else 0
    count += delta
    path.write_text(str(count))
    return count


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    missing = [p for p in DAEMONS + CLIENTS if _which(p) is None]
    if missing:
        skip_or_fail(f"{', '.join(missing)} not installed (Debian: apt-get install slurm-wlm munge)")
    root = _shared_root()
    with _locked(root):
        if _users(root, +1) == 1:
            try:
                cluster = start_cluster(root)
            except BaseException:
                _users(root, -1)
                raise
        else:
            cluster = SlurmCluster(root)
    before = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(cluster.conf)  # this process and every client it starts
    try:
        yield cluster
    finally:
        with _locked(root):
            if _users(root, -1) == 0:
                left = cluster.drained()
                cluster.stop()
                shutil.rmtree(root, ignore_errors=True)
                assert left == [], f"jobs left on the test cluster: {left}"
        if before is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = before


@pytest.fixture(scope="session")
def slurm_login(slurm_cluster: SlurmCluster) -> Iterator[Server]:
    """The cluster's "login node": a throwaway sshd on loopback whose sessions get the
    cluster's SLURM_CONF (on a real login node the default /etc/slurm/slurm.conf is
    it); yields a slurm Server that runs the Slurm client there."""
    from tests.fixtures_sshd import SSHD, start_sshd

    if not Path(SSHD).exists() or shutil.which("ssh-keygen") is None:
        skip_or_fail("OpenSSH's sshd is not installed (Debian: apt-get install openssh-server)")
    sshd = start_sshd(extra_config=f"SetEnv SLURM_CONF={slurm_cluster.conf}\n")
    try:
        yield replace(sshd.server, name="hpc-login", kind="slurm")
    finally:
        sshd.cleanup()
