"""`kill -9` of mer during a container run (issue 14): the engine's client lives on, and
so does the container (its monitor is not mer's child). The next mer on this host
finishes the row `lost`, kills the client's process group and removes the container by
the owner label every container of that mer carries."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from pathlib import Path

from mer.domain import ModelConfig, Server
from tests.faults.test_killed_mer import _mer, _row, _wait_for
from tests.shell.conftest import BIN


async def _seed(url: str, image: str) -> None:
    from mer.db.engine import create_engine
    from mer.db.migrate import upgrade
    from mer.db.uow import make_uow_factory

    engine = create_engine(url)
    try:
        await upgrade(engine)
        async with make_uow_factory(engine)() as uow:
            await uow.servers.add(Server(name="box", kind="container"))
            await uow.models.add(ModelConfig(name="sleeper", server="box", command=["sleep", "300"],
                                             image=image))
            await uow.commit()
    finally:
        await engine.dispose()


def _labels(name: str) -> dict[str, str] | None:
    done = subprocess.run(["podman", "inspect", "--format", "{{json .Config.Labels}}", name],
                          capture_output=True, text=True)
    return json.loads(done.stdout) if done.returncode == 0 else None


def test_a_killed_mer_leaves_no_container(podman_image, tmp_path: Path) -> None:
    db = tmp_path / "mer.db"
    asyncio.run(_seed(f"sqlite+aiosqlite:///{db}", podman_image.image))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MER_")}
    env.update(MER_DATABASE_URL=f"sqlite+aiosqlite:///{db}", MER_DATA_DIR=str(tmp_path / "data"),
               MER_ENV_FILE=str(tmp_path / "none.env"))
    mer = _mer(env, "-c", "run sleeper")
    try:
        _wait_for("the row to record the client's process group",
                  lambda: db.exists() and (_row(db) or (None, None, None))[2])
        # the container carries its mer's owner token (MER_OWNER) as a label
        name = _wait_for("the container", lambda: next(
            (n for n in podman_image.containers("mer-")
             if (_labels(n) or {}).get("mer.owner", "").startswith(f"{mer.pid}:")), None))
    finally:
        mer.send_signal(signal.SIGKILL)
        mer.wait(10)
    assert _row(db)[0] == "running" and _labels(name) is not None  # left behind, alive

    done = subprocess.run([str(BIN / "mer"), "-c", "runs --status running"], env=env,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    status, error, _ = _row(db)
    assert status == "lost" and "was killed" in error, error
    assert podman_image.containers(name) == []
    assert not list((tmp_path / "data" / "artifacts").glob(".mer-run-*"))  # scratch gone
