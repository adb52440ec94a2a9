"""The locks every writer of an outcome takes, and the error when writes collide anyway.

On PostgreSQL a transaction that writes an outcome's rows first takes its advisory lock (held
until commit), so a look-up of its latest revision stays true until the insert; SQLite's
``BEGIN IMMEDIATE`` already lets one writer at a time. Shared by the row-by-row store
(:mod:`ledger.store`), the set-based writers (:mod:`ledger.ingest_batch`,
:mod:`ledger.verdict_batch`) and the meter's bookings.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

__all__ = ["LedgerConflictError", "lock_outcomes", "outcome_lock_key"]


class LedgerConflictError(RuntimeError):
    """A write kept colliding with concurrent writes of the same outcome; retry it."""


def outcome_lock_key(tenant: str, outcome_id: str) -> str:
    """The advisory lock every writer of this outcome takes on PostgreSQL (until commit)."""
    return f"outcome:{tenant}:{outcome_id}"


def lock_outcomes(conn: Connection, tenant: str, outcome_ids: Iterable[str]) -> None:
    """PostgreSQL: take the outcomes' locks in one statement, sorted (no-op on SQLite, whose
    ``BEGIN IMMEDIATE`` already serialises writers).

    Every writer takes them in one order, so two batches sharing ids never deadlock; held until
    commit, so a read of the latest revision made after them stays true until then.
    """
    if conn.dialect.name != "postgresql":
        return
    keys = sorted({outcome_lock_key(tenant, outcome_id) for outcome_id in outcome_ids})
    if not keys:
        return
    # unnest() yields the array in order, so the locks are taken in sorted order.
    conn.execute(
        sa.text(
            "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) "
            "FROM unnest(CAST(:keys AS text[])) AS k"
        ),
        {"keys": keys},
    )
