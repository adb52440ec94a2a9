"""CPU seconds the processes of a benchmark use (Linux ``/proc``): how many cores a phase kept
busy, split into the benchmark's own process, a server's process tree and PostgreSQL backends."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # the fields after "(comm)", from "state"


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (0 when it is gone)."""
    fields = _stat(pid)
    return 0.0 if fields is None else (int(fields[11]) + int(fields[12])) / _TICK


def tree(pid: int) -> list[int]:
    """``pid`` and every live descendant (uvicorn's worker processes)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo += children.get(current, [])
    return out


class CpuMeter:
    """Snapshots of CPU seconds: ``client`` (this process), ``server`` (the process tree of
    ``server_pid``) and ``postgres`` (the backends whose application_name starts with
    ``app_prefix``, listed through the psycopg connection ``admin``)."""

    def __init__(self, server_pid: int | None, admin: Any | None, app_prefix: str) -> None:
        self.server_pid = server_pid
        self.admin = admin
        self.app_prefix = app_prefix

    def _backends(self) -> list[int]:
        if self.admin is None:
            return []
        rows = self.admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name LIKE %s",
            (self.app_prefix + "%",),
        ).fetchall()
        return [int(row[0]) for row in rows]

    def snapshot(self) -> dict[str, dict[int, float]]:
        times = os.times()
        pids = [] if self.server_pid is None else tree(self.server_pid)
        server = {pid: process_cpu(pid) for pid in pids}
        return {
            "client": {0: times.user + times.system},
            "server": server,
            "postgres": {p: process_cpu(p) for p in self._backends()},
        }

    @staticmethod
    def used(
        before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]
    ) -> dict[str, float]:
        """CPU seconds per part between two snapshots (a process born in between counts from 0)."""
        return {
            part: sum(max(0.0, cpu - before[part].get(pid, 0.0)) for pid, cpu in now.items())
            for part, now in after.items()
        }
