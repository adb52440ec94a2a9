"""Revocations in the cost report: verified outcomes taken back, netted per group (read-only).

:func:`ledger.cost_report.cost_report` calls these so that its own module stays small (the
revocations themselves are detected in :mod:`ledger.revocation` and booked in billing periods by
:mod:`ledger.periods`):

- :func:`net_revocations` counts, per report group, the verified outcomes whose judged verdict
  has a revocation booked (:mod:`ledger.periods`), and :func:`net_fields` turns a group's
  numerator, verified and revoked counts into ``verified_net`` and
  ``cost_per_verified_net_usd``. Costs are never moved: the work was paid for.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from decimal import Decimal

    from sqlalchemy.engine import Engine

__all__ = ["NO_VERIFIED_NET", "net_fields", "net_revocations"]

NO_VERIFIED_NET = (
    "verified minus revoked is not positive in this group: cost per net verified outcome is "
    "undefined"
)


def net_revocations(
    engine: Engine,
    tenant: str,
    *,
    verified: dict[str, tuple[int, tuple[str, dict[str, Any]]]],
    dims: list[str],
    period: Literal["day", "month"],
    since: datetime | None,
    until: datetime | None,
    groups: dict[tuple[str, tuple[Any, ...]], dict[str, Any]],
    bounds: dict[str, tuple[str, str]],
    new_group: Callable[[], dict[str, Any]],
) -> int:
    """Add each revoked verified outcome to its group's ``revoked`` count; return how many.

    Parameters
    ----------
    verified
        Outcome id -> (pk of its judged verdict, (status, dimension values)) for every outcome
        whose judged verdict is ``verified``.
    period
        The report's period (``"day"`` or ``"month"``) for the ``period`` dimension.
    groups, bounds
        The report's groups (``(status, dimension key)`` -> running totals) and period bounds;
        updated in place. With the ``period`` dimension a revocation counts in the period of its
        booking (:func:`booking_moment`), creating that group if it has no outcomes.

    A verdict revoked for several reasons counts once (its earliest booking). Revocations whose
    booking moment lies outside ``[since, until)`` are ignored.
    """
    import sqlalchemy as sa

    from ledger.db import session
    from ledger.report_periods import booking_moment, period_bounds, period_label
    from ledger.tables import RevocationRow

    if not verified:
        return 0
    table = RevocationRow.__table__  # type: ignore[attr-defined]
    query = sa.select(
        table.c.outcome_id,
        table.c.verdict_pk,
        table.c.occurred_at,
        table.c.booked_period_start,
        table.c.booked_at,
    ).where(table.c.tenant == tenant, table.c.outcome_id.in_(list(verified)))
    with session(engine, readonly=True) as db:
        rows = db.connection().execute(query).all()
    first: dict[str, datetime] = {}
    lo = None if since is None else booking_moment(since, since)
    hi = None if until is None else booking_moment(until, until)
    for oid, verdict_pk, occurred_at, booked_start, booked_at in rows:
        if verified[oid][0] != verdict_pk:
            continue  # a revocation of an earlier verdict: the judged one stands
        # Since 0006 the booking moment is stored (the meters' one); before, it was derived.
        moment = booked_at or booking_moment(occurred_at, booked_start)
        if (lo is not None and moment < lo) or (hi is not None and moment >= hi):
            continue
        if oid not in first or moment < first[oid]:
            first[oid] = moment
    for oid, moment in first.items():
        status, values = verified[oid][1]
        if "period" in dims:
            start, end = period_bounds(moment, period=period)
            label = period_label(start, period=period)
            values = {**values, "period": label}
            bounds[label] = (start.isoformat(), end.isoformat())
        key = (status, tuple(values[d] for d in dims))
        groups.setdefault(key, new_group())["revoked"] += 1
    return len(first)


def net_fields(numerator: Decimal, verified: int, revoked: int) -> dict[str, Any]:
    """``revoked``, ``verified_net``, ``cost_per_verified_net_usd`` and ``net_reason``.

    >>> from decimal import Decimal
    >>> net_fields(Decimal("3"), 4, 1)["cost_per_verified_net_usd"]
    1.0
    >>> net_fields(Decimal("3"), 1, 1)["net_reason"] == NO_VERIFIED_NET
    True
    """
    net = verified - revoked
    return {
        "revoked": revoked,
        "verified_net": net,
        "cost_per_verified_net_usd": float(numerator / net) if net > 0 else None,
        "net_reason": None if net > 0 else NO_VERIFIED_NET,
    }
