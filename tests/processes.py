"""Which processes a given mer started: every model carries MER_OWNER=<mer pid>:<its
start> in its environment (mer/services/ownership.py). Asking by owner, not by command
name, is right when other tests (or other suites) run the same example models at the
same time."""

from __future__ import annotations

import os

from mer.services.ownership import owner_token, process_start

# mer pid -> its whole owner token, taken while that mer lived. Pids wrap (32768 here):
# an orphan of an earlier mer with the same pid, still running, is not this mer's.
_tokens: dict[int, str] = {}


def owned_by(mer_pid: int) -> list[int]:
    """Live processes (of any user) whose environment says the mer with that pid
    started them (once asked while that mer runs: that mer and no other of its pid)."""
    start = process_start(mer_pid)
    if start is not None:
        _tokens[mer_pid] = owner_token(mer_pid, start)
    mark = f"MER_OWNER={_tokens.get(mer_pid, f'{mer_pid}:')}".encode()
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
