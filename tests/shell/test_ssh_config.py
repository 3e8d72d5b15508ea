"""`mer` resolves an SSH server's host through the OpenSSH client config that
MER_SSH_CONFIG names, as `ssh` would: `--host gpu1` is enough when the config knows gpu1
(mer's entry point in this process, the real sshd)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.shell.conftest import Mer

pytestmark = pytest.mark.ssh

MODELS = Path(__file__).resolve().parents[2] / "examples" / "models"


def test_a_host_known_to_the_ssh_config_pings_and_runs(mer: Mer, sshd_server, tmp_path: Path) -> None:
    config = tmp_path / "ssh_config"
    config.write_text(f"Host gpu1\n  HostName 127.0.0.1\n  Port {sshd_server.port}\n"
                      f"  User {sshd_server.user}\n  IdentityFile {sshd_server.identity}\n")
    mer.env.update(MER_SSH_CONFIG=str(config), MER_KNOWN_HOSTS=str(sshd_server.known_hosts))
    done = mer.main("--allow-edit", "-c", "server add gpu1 --kind ssh --host gpu1", "-c", "ping gpu1",
               "-c", f"model add far-echo --server gpu1 --command \"python3 {MODELS / 'echo.py'}\"",
               "-c", "run far-echo --data '\"via the config\"'")
    assert done.returncode == 0, done.stderr
    assert "gpu1: reachable; host key known" in done.stdout
    assert '"input": "via the config"' in done.stdout


def test_a_malformed_ssh_config_is_one_line_naming_it(mer: Mer, tmp_path: Path) -> None:
    config = tmp_path / "ssh_config"
    config.write_text("Host gpu1\n  justoneword\n")
    mer.env["MER_SSH_CONFIG"] = str(config)
    done = mer.main("--allow-edit", "-c", "server add gpu1 --kind ssh --host gpu1", "-c", "ping gpu1")
    assert done.returncode != 0
    assert done.stderr.strip() == (f"-c 2: error: SSH config {config}: Unparsable line justoneword; "
                                   f"fix it, or point MER_SSH_CONFIG at another file")
