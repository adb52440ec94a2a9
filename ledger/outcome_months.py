"""The month an outcome is filed under: when the ledger received its revision 1 (UTC).

``outcome_facts.outcome_month`` holds it (migration 0014): it never changes for an outcome, so a
partitioned ledger (:mod:`ledger.partitions`) can partition the facts by it and still keep one
fact per (tenant, outcome id) in the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa

from judge.models import as_utc

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

__all__ = ["month_start", "next_month", "outcome_months"]


def next_month(month: datetime) -> datetime:
    """The start of the month after the month starting at ``month``.

    >>> next_month(datetime(2026, 12, 1, tzinfo=UTC)).isoformat()
    '2027-01-01T00:00:00+00:00'
    """
    return month.replace(year=month.year + month.month // 12, month=month.month % 12 + 1)


def month_start(moment: datetime) -> datetime:
    """The first instant (UTC) of ``moment``'s UTC month.

    >>> month_start(datetime(2026, 3, 31, 23, 59, tzinfo=UTC)).isoformat()
    '2026-03-01T00:00:00+00:00'
    """
    at = as_utc(moment)
    return datetime(at.year, at.month, 1, tzinfo=UTC)


def outcome_months(
    conn: Connection, tenant: str, outcome_ids: Sequence[str], *, default: datetime
) -> dict[str, datetime]:
    """``outcome_month`` of each outcome: the month the ledger received its revision 1.

    Fixed for good when the outcome is first received (revisions never change it), which is
    what lets PostgreSQL partition the facts by it (:mod:`ledger.partitions`). An id with no
    stored outcome gets the month of ``default`` (a fact written without its outcome: only
    tests do that; on a partitioned ledger its foreign key refuses it).
    """
    from ledger.db import chunked
    from ledger.tables import OutcomeRow

    o = OutcomeRow.__table__  # type: ignore[attr-defined]
    found: dict[str, datetime] = {}
    ids = sorted(set(outcome_ids))
    for chunk in chunked(ids):
        rows = conn.execute(
            sa.select(o.c.outcome_id, o.c.received_at).where(
                o.c.tenant == tenant,
                o.c.outcome_id.in_(chunk),
                o.c.revision == 1,
            )
        )
        found.update((oid, month_start(received)) for oid, received in rows)
    fallback = month_start(default)
    return {oid: found.get(oid, fallback) for oid in ids}
