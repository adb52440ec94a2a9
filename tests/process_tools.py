"""Process helpers for tests that kill processes and check what is left behind (Linux /proc)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie awaiting its parent counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def command_line(pid: int) -> str:
    """``pid``'s command line, its arguments joined by spaces ("" once it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    except OSError:
        return ""


def children(pid: int) -> list[int]:
    """The process ids of ``pid``'s children (of every thread of it)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def still_running(pids: Iterable[int], *, within: float = 20.0) -> list[int]:
    """Those of ``pids`` still running after waiting up to ``within`` seconds for all to end."""
    waiting = list(pids)
    deadline = time.monotonic() + within
    while waiting and time.monotonic() < deadline:
        time.sleep(0.1)
        waiting = [pid for pid in waiting if alive(pid)]
    return waiting


def children_of_killed_parent(script: str, *, cwd: Path) -> tuple[list[int], list[int]]:
    """Run the Python ``script`` (it prints ready once its children are up, then waits), kill
    it with SIGKILL, and return its running children before the kill and those still running
    20 s after it."""
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=cwd
    )
    try:
        assert parent.stdout is not None
        assert parent.stdout.readline() == "ready\n"
        before = [pid for pid in children(parent.pid) if alive(pid)]
        parent.kill()
        parent.wait(timeout=10)
        return before, still_running(before)
    finally:
        parent.kill()
