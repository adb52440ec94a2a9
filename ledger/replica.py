"""Reading the meters from a read replica (``OUTCOME_JUDGE_METER_READ_URL``) when it is safe.

A meter read first publishes, on the primary, how far windows are final (the tenant's
``meter_final_through``, W: :func:`ledger.bookings.publish_final_through`); every entry booked
before W committed before W did (bookings hold the tenant row ``FOR SHARE``, the publication
takes it ``FOR UPDATE``). A replica replays commits in order, so once it shows the tenant's W at
least as far as the primary's, it holds every entry of every row the read will call final: final
rows from it are exactly the primary's, and they never change. Provisional rows may lag by the
replica's delay (entries booked since). A replica that has not replayed W yet, or does not
answer, is not used for that read: the primary answers instead (:func:`read_from`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

import sqlalchemy as sa

from judge.models import as_utc
from ledger.db import session

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

log = logging.getLogger("outcome_judge.ledger")

_T = TypeVar("_T")


def caught_up(conn: Connection, tenant: str, through: datetime | None) -> bool:
    """Whether the database behind ``conn`` has the tenant's final mark at ``through`` or later."""
    if through is None:
        return True  # nothing published: no row is final from W, nothing to wait for
    from ledger.tables import TenantRow

    tenants = TenantRow.__table__.c  # type: ignore[attr-defined]
    seen = conn.execute(
        sa.select(tenants.meter_final_through).where(tenants.name == tenant)
    ).scalar_one_or_none()
    return seen is not None and as_utc(seen) >= through


def read_from(
    primary: Engine,
    replica: Engine | None,
    tenant: str,
    through: datetime | None,
    read: Callable[[Connection], _T],
) -> _T:
    """``read`` on the replica when it has caught up with ``through``, else on the primary.

    The replica's connection is read-only (one transaction; nothing is written through it); a
    replica that fails (down, a wrong URL, a missing grant) is logged and the primary answers.
    """
    if replica is not None:
        try:
            with session(replica, readonly=True) as db:
                conn = db.connection()
                if caught_up(conn, tenant, through):
                    return read(conn)
            log.info("meter read replica has not replayed %s's final mark yet: primary", tenant)
        except sa.exc.DBAPIError as exc:
            log.warning("meter read replica failed (the primary answers): %s", exc)
    with session(primary, readonly=True) as db:
        return read(db.connection())
