"""Which processes a given mer started: every model carries MER_OWNER=<mer pid>:... in
its environment (mer/services/ownership.py). Asking by owner, not by command name, is
right when other tests (or other suites) run the same example models at the same time."""

from __future__ import annotations

import os


def owned_by(mer_pid: int) -> list[int]:
    """Live processes (of any user) whose environment says the mer with that pid
    started them."""
    mark = f"MER_OWNER={mer_pid}:".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if any(v.startswith(mark) for v in f.read().split(b"\0")):
                    found.append(int(entry))
        except OSError:
            continue
    return found
