"""What a worker does beside judging, between claims: the ledger's upkeep, logged, never fatal.

- settle the judge calls a dead worker left in flight (:func:`ledger.callstore.settle_pending`:
  booked as unknown at their estimated cost);
- create next months' partitions of a partitioned PostgreSQL ledger before their rows arrive
  (:mod:`ledger.partition_upkeep`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = ["partition_upkeep", "settle_pending_calls", "short_error"]

log = logging.getLogger("outcome_judge.worker")


def short_error(exc: BaseException) -> str:
    """One line about an error (never a URL with a password: the driver's text is cut)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:300]}"


async def settle_pending_calls(engine: Engine, worker_id: str) -> None:
    """Book the calls a dead worker left in flight as unknown (at their estimated cost)."""
    from ledger.callstore import settle_pending

    settled = await asyncio.to_thread(settle_pending, engine)
    if settled.calls:
        log.warning(
            "worker %s: %d judge call(s) of %d outcome(s) left in flight by a stopped worker "
            "settled as unknown at an estimated $%.6f",
            worker_id,
            settled.calls,
            settled.outcomes,
            settled.estimated_cost_usd,
        )


async def partition_upkeep(engine: Engine, worker_id: str) -> None:
    """Next months' partitions before their rows arrive (ledger.partition_upkeep); a failure
    (a table lock not granted within its timeout) is logged and tried again next round."""
    from ledger.partition_upkeep import ensure_partitions

    try:
        report = await asyncio.to_thread(ensure_partitions, engine)
    except Exception as exc:
        log.warning("worker %s: partition upkeep failed: %s", worker_id, short_error(exc))
        return
    if report.created:
        log.info("worker %s: created partitions %s", worker_id, ", ".join(report.created))
    for name in report.blocked:
        log.warning(
            "worker %s: partition %s not created: its rows are in the DEFAULT partition; "
            "run judge db partition --move-default",
            worker_id,
            name,
        )
