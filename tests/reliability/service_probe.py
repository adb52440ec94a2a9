"""Watching a live service process from a test: its memory (RSS) and every table's row count."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

PROC = Path("/proc")


def group_rss_kib(pgid: int, field: str = "VmRSS") -> int:
    """Resident memory (KiB) of every process in process group ``pgid`` (a server and its
    children: ``tests.api.live.Process`` starts each in a new session). 0 once it is gone.

    ``field`` is the /proc/<pid>/status line: ``VmRSS`` (all resident memory) or ``RssAnon``
    (heap and stacks only, without mapped files: where a leak shows).
    """
    total = 0
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            # Fields after the command name (which may hold spaces): state ppid pgrp ...
            if int(stat.rsplit(")", 1)[1].split()[2]) != pgid:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith(f"{field}:"):
                    total += int(line.split()[1])
                    break
        except (OSError, IndexError, ValueError):
            continue  # the process ended while being read
    return total


def wait_rss_settled(
    pgid: int, *, still_for: float = 2.0, tolerance_kib: int = 2048, timeout: float = 60.0
) -> int:
    """Wait until the group's RSS stays within ``tolerance_kib`` for ``still_for`` seconds.

    A freshly started ``judge serve`` keeps growing for seconds after it answers (its embedded
    worker imports litellm in a thread): a memory baseline taken before that is meaningless.
    Returns the settled RSS (KiB), or the last one read at ``timeout``.
    """
    deadline = time.monotonic() + timeout
    anchor, since = group_rss_kib(pgid), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = group_rss_kib(pgid)
        if abs(now - anchor) > tolerance_kib:
            anchor, since = now, time.monotonic()
        elif time.monotonic() - since >= still_for:
            return now
    return group_rss_kib(pgid)


class RssSampler:
    """Samples :func:`group_rss_kib` every ``interval`` seconds in a thread, with wall times.

    Use as a context manager; ``samples`` is ``[(time.time(), KiB), ...]``, ``anon`` the same
    for ``RssAnon``.
    """

    def __init__(self, pgid: int, *, interval: float = 0.25) -> None:
        self.pgid = pgid
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self.anon: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.time()
            self.samples.append((now, group_rss_kib(self.pgid)))
            self.anon.append((now, group_rss_kib(self.pgid, "RssAnon")))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def between(self, start: float, end: float, *, anon: bool = False) -> list[int]:
        """KiB of the samples (``anon``: of RssAnon) taken in ``[start, end]``."""
        return [kib for at, kib in (self.anon if anon else self.samples) if start <= at <= end]


#: The request bookkeeping of several API processes (ledger/shared_state_tables.py): every
#: request, refused ones included, takes a rate-limit token and is counted for /metrics, so these
#: change by design; "nothing written" is about the ledger's data.
REQUEST_STATE_TABLES = frozenset({"rate_buckets", "auth_failures", "metric_counters"})


def all_table_counts(engine: Engine) -> dict[str, int]:
    """Rows in every table of the database (the service tables and alembic's included), except
    :data:`REQUEST_STATE_TABLES`."""
    with engine.connect() as conn:
        names = sorted(
            n for n in sa.inspect(conn).get_table_names() if n not in REQUEST_STATE_TABLES
        )
        return {
            name: int(conn.execute(sa.text(f'SELECT COUNT(*) FROM "{name}"')).scalar_one())
            for name in names
        }


def log_problems(text: str) -> list[Any]:
    """Lines of a server log that show a server-side failure (a traceback or an ERROR)."""
    return [line for line in text.splitlines() if "Traceback" in line or " ERROR " in line]
