"""A real OpenSSH sshd on a free 127.0.0.1 port, with throwaway keys.

``sshd_server`` (session scope) yields an ``SshdFixture``:
- ``.server``: a mer.domain.Server (kind "ssh") with host, port, user, identity_file and
  known_hosts set, ready for SshExecutor;
- ``.stop()`` / ``.start()``: kill sshd *and* every session it serves (a server crash),
  then bring it back on the same port with the same keys;
- ``.wrong_key``: a client key the server does not accept.
As root it logs in as a dedicated user ``mertest`` (created with an empty, fast shell
startup: root's ~/.bashrc here costs more than SSH itself); otherwise as the current
user. Without sshd the tests skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mer.domain import Server
from tests.conftest import skip_or_fail

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
TEST_USER = "mertest"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _keygen(path: Path, kind: str = "ed25519") -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(path)], check=True)


def _login_user() -> str:
    if os.geteuid() != 0:
        return pwd.getpwuid(os.getuid()).pw_name
    # Several test processes (pytest-xdist's workers) may get here at once: one at a time.
    with open("/tmp/mer-test-user.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            pwd.getpwnam(TEST_USER)
        except KeyError:
            subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", TEST_USER], check=True)
        # useradd leaves the account locked ("!"), which sshd refuses even for key logins.
        subprocess.run(["usermod", "-p", "*", TEST_USER], check=True)
        home = Path(pwd.getpwnam(TEST_USER).pw_dir)
        for rc in (".profile", ".bashrc"):
            (home / rc).write_text("")  # light startup: every exec goes through this shell
    return TEST_USER


@dataclass
class SshdFixture:
    root: Path
    port: int
    user: str
    identity: Path
    wrong_key: Path
    known_hosts: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def server(self) -> Server:
        return Server(name="sshtest", kind="ssh", host="127.0.0.1", port=self.port, user=self.user,
                      identity_file=str(self.identity), known_hosts=str(self.known_hosts))

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(self.root / "sshd_config")],
            stdout=subprocess.DEVNULL, stderr=open(self.root / "sshd.log", "ab"),  # noqa: SIM115
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        log = (self.root / "sshd.log").read_text(errors="replace")
        raise RuntimeError(f"sshd did not start on port {self.port}: {log[-2000:]}")

    def stop(self) -> None:
        """Kill the listener and every session process it forked (a crash, not a
        graceful shutdown): the sessions are in sshd's process group."""
        if self.proc is None:
            return
        pid = self.proc.pid
        children = _descendants(pid)
        for p in [pid, *children]:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=10)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def _descendants(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout
    parents: dict[int, list[int]] = {}
    for line in out.splitlines():
        child, parent = (int(x) for x in line.split())
        parents.setdefault(parent, []).append(child)
    found, todo = [], [pid]
    while todo:
        for c in parents.get(todo.pop(), []):
            found.append(c)
            todo.append(c)
    return found


def start_sshd(extra_config: str = "", max_sessions: int = 64) -> SshdFixture:
    """Start a throwaway sshd (also used by benchmarks/bench_exec.py); ``cleanup`` it.
    ``extra_config``: more sshd_config lines (tests/fixtures_slurm.py: a SetEnv);
    ``max_sessions``: the session channels one connection may have open at once."""
    # Not under pytest's tmp dir: that is private to us, and sshd reads authorized_keys
    # as the login user.
    root = Path(tempfile.mkdtemp(prefix="mer-sshd-"))
    root.chmod(0o755)
    user = _login_user()
    _keygen(root / "host_ed25519")
    _keygen(root / "client")
    _keygen(root / "wrong")
    auth = root / "authorized_keys"
    auth.write_text((root / "client.pub").read_text())
    auth.chmod(0o644)
    port = _free_port()
    host_pub = (root / "host_ed25519.pub").read_text().split()
    known = root / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(exist_ok=True)
    (root / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {root / 'host_ed25519'}\n"
        f"PidFile {root / 'sshd.pid'}\nAuthorizedKeysFile {auth}\nStrictModes no\n"
        "UsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        f"PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nMaxSessions {max_sessions}\n"
        "MaxStartups 64\nLogLevel ERROR\nSubsystem sftp internal-sftp\n" + extra_config
    )
    fixture = SshdFixture(root=root, port=port, user=user, identity=root / "client",
                          wrong_key=root / "wrong", known_hosts=known)
    fixture.start()
    return fixture


@pytest.fixture(scope="session")
def sshd_server() -> Iterator[SshdFixture]:
    if not Path(SSHD).exists() or shutil.which("ssh-keygen") is None:
        skip_or_fail("OpenSSH's sshd is not installed (Debian: apt-get install openssh-server)")
    fixture = start_sshd()
    try:
        yield fixture
    finally:
        fixture.cleanup()
