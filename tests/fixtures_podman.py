"""Real podman with a test image built here (no registry can be reached): a busybox root
filesystem packed with tar and loaded with ``podman import``.

``podman_image`` (session scope) yields a ``PodmanImage``: ``.image`` (the name), and
``.containers(name_prefix)`` (what ``podman ps -a`` lists). podman gets a containers.conf
(CONTAINERS_CONF) with runc and cgroupfs: crun refuses this host's hybrid cgroups (README:
"Container servers"). ``ssh_podman_image`` also loads the image for the test sshd's login
user (rootless podman) and gives that user the same containers.conf. Without podman, runc
or busybox the tests skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import skip_or_fail

IMAGE = "localhost/mer-test:1"
CONTAINERS_CONF = """[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
"""
APPLETS = ("sh", "cat", "cmp", "echo", "true", "sleep", "sed", "ls", "mkdir", "head", "printf")


@dataclass
class PodmanImage:
    image: str
    rootfs_tar: Path
    conf: Path

    def containers(self, prefix: str = "mer-", user: str | None = None) -> list[str]:
        """Names of the containers (any state) whose name starts with ``prefix``: root's,
        or those of ``user`` (another user's rootless podman)."""
        ps = "podman ps -a --format '{{.Names}}'"
        argv = ["sh", "-c", ps]
        if user is not None and user != pwd.getpwuid(os.getuid()).pw_name:
            argv = ["su", "-s", "/bin/sh", user, "-c", ps]
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        return [n for n in out.split() if n.startswith(prefix)]


def _rootfs_tar(root: Path) -> Path:
    busybox = shutil.which("busybox") or "/bin/busybox"
    fs = root / "rootfs"
    for sub in ("bin", "data", "tmp"):
        (fs / sub).mkdir(parents=True)
    shutil.copy(busybox, fs / "bin" / "busybox")
    for applet in APPLETS:
        (fs / "bin" / applet).symlink_to("busybox")
    tar = root / "rootfs.tar"
    subprocess.run(["tar", "-C", str(fs), "-cf", str(tar), "."], check=True)
    return tar


@pytest.fixture(scope="session")
def podman_image() -> Iterator[PodmanImage]:
    missing = [p for p in ("podman", "runc", "busybox")
               if shutil.which(p) is None and not Path(f"/usr/sbin/{p}").exists()]
    if missing:
        skip_or_fail(f"{', '.join(missing)} not installed (Debian: apt-get install podman runc "
                     f"busybox-static)")
    root = Path(tempfile.mkdtemp(prefix="mer-podman-"))
    root.chmod(0o755)
    conf = root / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    conf.chmod(0o644)
    before = os.environ.get("CONTAINERS_CONF")
    os.environ["CONTAINERS_CONF"] = str(conf)  # this process and every mer it starts
    try:
        tar = _rootfs_tar(root)
        with tar.open("rb") as fh:
            subprocess.run(["podman", "import", "-q", "-", IMAGE], stdin=fh, check=True,
                           capture_output=True)
        yield PodmanImage(IMAGE, tar, conf)
    finally:
        if before is None:
            os.environ.pop("CONTAINERS_CONF", None)
        else:
            os.environ["CONTAINERS_CONF"] = before
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def ssh_podman_image(podman_image: PodmanImage, sshd_server) -> PodmanImage:  # noqa: ANN001
    """The image in the storage of the sshd's login user, whose podman (rootless when it is
    not root) reads ~/.config/containers/containers.conf: a remote session has no
    CONTAINERS_CONF."""
    user = sshd_server.user
    if user != pwd.getpwuid(os.getuid()).pw_name:  # as root: the dedicated test user
        home = Path(pwd.getpwnam(user).pw_dir)
        conf = home / ".config" / "containers" / "containers.conf"
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(CONTAINERS_CONF)
        for path in (home / ".config", conf.parent, conf):
            shutil.chown(path, user, user)
        load = ["su", "-s", "/bin/sh", user, "-c", f"podman import -q - {IMAGE}"]
        with podman_image.rootfs_tar.open("rb") as fh:
            done = subprocess.run(load, stdin=fh, capture_output=True, text=True)
        if done.returncode != 0:
            skip_or_fail(f"podman does not run for the sshd's login user {user}: "
                         f"{done.stderr.strip()[-300:]}")
    return podman_image
