"""Meter rollups: the entries of final UTC days, summed once, so a meter read skips them.

The verified-outcomes meter (:mod:`ledger.meters`) sums ``meter_entries``. A day whose window is
final never receives another entry and never loses one (:mod:`ledger.bookings`: nothing is
booked into, or deleted from, a final or closed window), so its sums per group and reason are
fixed: ``meter_rollups`` keeps them with the net count and the latest ``final_at``, for every
grouping a meter can ask for (the 16 subsets of agent, tier, agent_version and model_path, told
apart by ``group_mask``). A read takes the rows of its own grouping for the rolled days (about
as many as it returns, whatever the traffic) and counts only the rest from the entries.

Which days are rolled follows from what the read already knows, with no bookkeeping of its own:

- every whole UTC day before the day of the tenant's ``meter_final_through`` (W), rolled in
  the transaction that moves W past it (:func:`roll_published`, from
  :func:`ledger.bookings.publish_final_through`);
- every day of a closed billing period, rolled in the transaction that closes it
  (:func:`roll_closed_month`, from :meth:`ledger.periods.Periods.close_period`).

Both transactions hold the tenant row ``FOR UPDATE`` (PostgreSQL; SQLite serialises writers),
read W and the closed periods under it, and roll only the days that their own change made
final: two processes advancing W at once take turns, and the second rolls nothing the first
did. Upgrading a ledger across 0016 rolls what it had already published or closed
(:func:`backfill_rollups`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from judge.models import as_utc

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

__all__ = [
    "GROUPING_BITS",
    "Span",
    "backfill_rollups",
    "group_mask",
    "live_spans",
    "roll",
    "roll_closed_month",
    "roll_published",
    "rolled_spans",
]

#: A half-open time range ``[start, end)`` (aware UTC datetimes).
Span = tuple[datetime, datetime]
_DAY = timedelta(days=1)
_DIMS = ("agent", "tier", "agent_version", "model_path")
#: The bit of each dimension in ``meter_rollups.group_mask``.
GROUPING_BITS = {"agent": 1, "tier": 2, "agent_version": 4, "model_path": 8}


def _floor_day(moment: datetime) -> datetime:
    return as_utc(moment).replace(hour=0, minute=0, second=0, microsecond=0)


def _ceil_day(moment: datetime) -> datetime:
    floor = _floor_day(moment)
    return floor if floor == as_utc(moment) else floor + _DAY


def _next_month(start: datetime) -> datetime:
    return (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )


def _merge(spans: Iterable[Span]) -> list[Span]:
    """Sorted, non-empty, disjoint spans covering the same moments (touching ones joined)."""
    merged: list[Span] = []
    for start, end in sorted(s for s in spans if s[0] < s[1]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _minus(span: Span, holes: Iterable[Span]) -> list[Span]:
    """``span`` without the moments of ``holes``, as sorted disjoint spans."""
    out: list[Span] = []
    cursor, end = span
    for h_start, h_end in _merge(holes):
        if h_end <= cursor or h_start >= end:
            continue
        if h_start > cursor:
            out.append((cursor, h_start))
        cursor = max(cursor, h_end)
    if cursor < end:
        out.append((cursor, end))
    return out


def _months(starts: Iterable[datetime]) -> list[Span]:
    return [(as_utc(s), _next_month(as_utc(s))) for s in starts]


def rolled_spans(
    since: datetime, until: datetime, through: datetime | None, closed: Iterable[datetime]
) -> list[Span]:
    """The whole UTC days of ``[since, until)`` whose rollups are stored, as merged spans.

    A day is rolled when it ends by the day of ``through`` (the tenant's W) or lies in a
    closed period (``closed``: the periods' starts). Days cut by ``since`` or ``until`` are not
    whole: they are counted from the entries.

    >>> from datetime import UTC
    >>> [(a.isoformat()[:10], b.isoformat()[:10]) for a, b in rolled_spans(
    ...     datetime(2026, 1, 30, 12, tzinfo=UTC), datetime(2026, 3, 5, tzinfo=UTC),
    ...     datetime(2026, 2, 3, 7, tzinfo=UTC), [datetime(2026, 2, 1, tzinfo=UTC)])]
    [('2026-01-31', '2026-03-01')]
    """
    lo, hi = _ceil_day(since), _floor_day(until)
    spans = _months(closed)
    if through is not None:
        spans.append((lo, _floor_day(through)))
    return _merge((max(lo, a), min(hi, b)) for a, b in spans)


def live_spans(since: datetime, until: datetime, rolled: Iterable[Span]) -> list[Span]:
    """The parts of ``[since, until)`` not in ``rolled``: counted from the entries."""
    return _minus((as_utc(since), as_utc(until)), rolled)


def _tables() -> tuple[Any, Any]:
    from ledger.service_tables import MeterEntryRow, MeterRollupRow

    return (
        MeterEntryRow.__table__,  # type: ignore[attr-defined]
        MeterRollupRow.__table__,  # type: ignore[attr-defined]
    )


def _day_of(dialect: str, column: Any) -> Any:
    """The UTC day start of a timestamp, computed by the database in the column's storage.

    PostgreSQL: truncated in UTC whatever the session's time zone. SQLite: the day prefix of
    the stored UTC text and midnight, in :class:`ledger.columns.UTCDateTime`'s format.
    """
    if dialect == "postgresql":
        utc = sa.func.timezone("UTC", column)
        return sa.func.timezone("UTC", sa.func.date_trunc("day", utc))
    return sa.func.substr(column, 1, 10).concat(" 00:00:00.000000")


def group_mask(dims: Iterable[str]) -> int:
    """The ``group_mask`` of the rollup rows grouped by ``dims`` (a bit per dimension).

    >>> group_mask([]), group_mask(["tier", "agent"]), group_mask(GROUPING_BITS)
    (0, 3, 15)
    """
    return sum(GROUPING_BITS[d] for d in set(dims))


def roll(conn: Connection, tenant: str, spans: Iterable[Span]) -> int:
    """Store the rollups of the whole days in ``spans``; return the rows written.

    The caller guarantees that those days are final and not rolled yet (see the module
    docstring). The database sums the entries by every dimension (one ``INSERT .. SELECT`` per
    span), then each of the 15 coarser groupings from those rows: exact, as sums and maxima
    add up, and each grouping has a row exactly where its entries do.
    """
    entries, rollups = _tables()
    finest = group_mask(_DIMS)
    columns = ["tenant", "group_mask", "day", *_DIMS, "reason", "value", "last_final"]
    day = _day_of(conn.dialect.name, entries.c.booked_at)
    written = 0
    for start, end in spans:
        by_all = [entries.c.tenant, day, *(entries.c[d] for d in _DIMS), entries.c.reason]
        sums = [sa.func.sum(entries.c.delta), sa.func.max(entries.c.final_at)]
        query = (
            sa.select(by_all[0], sa.literal(finest), *by_all[1:], *sums)
            .where(
                entries.c.tenant == tenant,
                entries.c.booked_at >= start,
                entries.c.booked_at < end,
            )
            .group_by(*by_all)
            .order_by(day)  # stored in day order: a read's range is contiguous on disk
        )
        written += _rowcount(conn.execute(sa.insert(rollups).from_select(columns, query)))
        for mask in range(finest):
            kept = [rollups.c[d] if GROUPING_BITS[d] & mask else sa.null() for d in _DIMS]
            grouped = [rollups.c[d] for d in _DIMS if GROUPING_BITS[d] & mask]
            by = [rollups.c.tenant, rollups.c.day, *grouped, rollups.c.reason]
            sums = [sa.func.sum(rollups.c.value), sa.func.max(rollups.c.last_final)]
            query = (
                sa.select(rollups.c.tenant, sa.literal(mask), rollups.c.day, *kept, *by[-1:], *sums)
                .where(
                    rollups.c.tenant == tenant,
                    rollups.c.group_mask == finest,
                    rollups.c.day >= start,
                    rollups.c.day < end,
                )
                .group_by(*by)
                .order_by(rollups.c.day)
            )
            written += _rowcount(conn.execute(sa.insert(rollups).from_select(columns, query)))
    return written


def _rowcount(result: Any) -> int:
    return max(0, result.rowcount or 0)


def _closed_months(conn: Connection, tenant: str) -> list[datetime]:
    from ledger.tables import BillingPeriodRow

    periods = BillingPeriodRow.__table__  # type: ignore[attr-defined]
    found = conn.execute(
        sa.select(periods.c.start).where(periods.c.tenant == tenant, periods.c.status == "closed")
    ).scalars()
    return [as_utc(start) for start in found]


def _first_day(conn: Connection, tenant: str) -> datetime | None:
    """The day of the tenant's earliest entry (one step down the meter index), or None."""
    entries, _ = _tables()
    first = conn.execute(
        sa.select(sa.func.min(entries.c.booked_at)).where(entries.c.tenant == tenant)
    ).scalar_one_or_none()
    if first is None:
        return None
    moment = first if isinstance(first, datetime) else datetime.fromisoformat(str(first))
    return _floor_day(moment)


def roll_published(conn: Connection, tenant: str, before: datetime | None, after: datetime) -> int:
    """Roll the days that W moving from ``before`` to ``after`` made final.

    Those are the days from ``before``'s day (or the first entry's) up to ``after``'s day,
    except in closed periods (rolled when they closed). Call it in the transaction that moves
    W, holding the tenant row, with ``before`` read under that lock.
    """
    start = _floor_day(before) if before is not None else _first_day(conn, tenant)
    end = _floor_day(after)
    if start is None or start >= end:
        return 0
    return roll(conn, tenant, _minus((start, end), _months(_closed_months(conn, tenant))))


def roll_closed_month(
    conn: Connection, tenant: str, start: datetime, through: datetime | None
) -> int:
    """Roll a period that was just closed: its days not already rolled by W (``through``).

    Call it in the transaction that closes the period, holding the tenant row, with
    ``through`` read under that lock.
    """
    span = (as_utc(start), _next_month(as_utc(start)))
    if through is not None:
        span = (max(span[0], _floor_day(through)), span[1])
    return roll(conn, tenant, [span]) if span[0] < span[1] else 0


def backfill_rollups(conn: Connection) -> int:
    """Rollups for a ledger upgraded across 0016: every tenant's published or closed days.

    Runs in the migration's transaction, after the entries' own back-fill (0006); returns the
    rows written.
    """
    from ledger.tables import TenantRow

    tenants = TenantRow.__table__  # type: ignore[attr-defined]
    found: Mapping[str, Any] = dict(
        conn.execute(sa.select(tenants.c.name, tenants.c.meter_final_through)).all()
    )
    written = 0
    for tenant, through in sorted(found.items()):
        first = _first_day(conn, tenant)
        if first is None:
            continue
        spans = _months(_closed_months(conn, tenant))
        if through is not None:
            spans.append((first, _floor_day(through)))
        written += roll(conn, tenant, _merge(spans))
    return written
