"""Request counters summed over every API process: ``metric_counters``.

Each API process counts its requests in memory and adds the counts to this table every few
seconds (:func:`add_counts`: one upsert per counter, ``value = value + excluded.value``, in one
statement per chunk); ``/metrics`` reads a tenant's totals (:func:`read_counts`) and adds what
its own process has not written yet. Rows are written in sorted key order, so two processes
adding overlapping counters at once take the row locks in the same order and never deadlock.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import sqlalchemy as sa

from ledger.db import chunked, insert_for, session

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

#: One counter's increment: ``(tenant, name, labels, delta)``; ``labels`` a JSON array.
Count = tuple[str, str, str, float]

#: Rows per statement (4 parameters each; far below either database's parameter limit).
CHUNK = 500


def _table() -> sa.Table:
    from ledger.shared_state_tables import MetricCounterRow

    table: sa.Table = MetricCounterRow.__table__  # type: ignore[attr-defined]
    return table


def add_counts(engine: Engine, counts: Iterable[Count]) -> int:
    """Add each delta to its counter (created at the delta), in one transaction; rows written.

    Deltas for the same counter are summed first. Either every delta is added or, on an error,
    none is (the caller keeps them for the next attempt).
    """
    summed: dict[tuple[str, str, str], float] = {}
    for tenant, name, labels, delta in counts:
        key = (tenant, name, labels)
        summed[key] = summed.get(key, 0.0) + delta
    if not summed:
        return 0
    table = _table()
    rows = [
        {"tenant": t, "name": n, "labels": lab, "value": v}
        for (t, n, lab), v in sorted(summed.items())
    ]
    with session(engine) as db:
        conn = db.connection()
        for chunk in chunked(rows, CHUNK):
            stmt = insert_for(conn.dialect.name, table).values(chunk)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[table.c.tenant, table.c.name, table.c.labels],
                    set_={"value": table.c.value + stmt.excluded.value},
                )
            )
    return len(rows)


def read_counts(engine: Engine, tenant: str) -> list[tuple[str, str, float]]:
    """Every counter of ``tenant``: ``(name, labels, value)``."""
    c = _table().c
    with session(engine, readonly=True) as db:
        found = db.connection().execute(
            sa.select(c.name, c.labels, c.value).where(c.tenant == tenant)
        )
        return [(str(name), str(labels), float(value)) for name, labels, value in found]
