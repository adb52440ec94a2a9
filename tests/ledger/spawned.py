"""Running the same work in several OS processes at once, for the concurrency tests.

Real processes (``spawn``: nothing inherited but the arguments), released together by a barrier;
each reports ``("ok", index, result)`` or ``("error", index, repr(exception))`` on a queue.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from multiprocessing.synchronize import Barrier
from typing import Any

Target = Callable[[str, int, Barrier, Any], None]


def run_spawned(target: Target, url: str, processes: int, timeout: float) -> dict[int, Any]:
    """Run ``target(url, index, barrier, results)`` in ``processes`` processes; every one must
    report ``ok`` and exit cleanly. Returns each process's result by index."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes)
    results = ctx.Queue()
    workers = [
        ctx.Process(target=target, args=(url, index, barrier, results), daemon=True)
        for index in range(processes)
    ]
    for worker in workers:
        worker.start()
    try:
        reports = [results.get(timeout=timeout) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=timeout)
            if worker.is_alive():  # pragma: no cover - only when a process hangs
                worker.kill()
    errors = [report for report in reports if report[0] != "ok"]
    assert not errors, errors
    assert all(worker.exitcode == 0 for worker in workers)
    return {report[1]: report[2] for report in reports}
