"""Calendar periods of reports and meters: the UTC day or month holding a moment.

Pure date arithmetic, kept apart so the cost report, the meters and the revocation netting
(:mod:`ledger.cost_report_revocations`) share it without importing one another; also when a
revocation counts (:func:`booking_moment`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

__all__ = ["PERIODS", "Period", "period_bounds", "period_label"]

Period = Literal["day", "month"]
PERIODS: tuple[Period, ...] = ("day", "month")


def period_bounds(moment: datetime, *, period: Period) -> tuple[datetime, datetime]:
    """The UTC day or month holding ``moment``, as a half-open ``[start, end)`` (naive = UTC).

    Raises
    ------
    ValueError
        ``period`` is not ``"day"`` or ``"month"``.

    >>> start, end = period_bounds(datetime(2026, 12, 31, 23, 59, tzinfo=UTC), period="month")
    >>> start.isoformat(), end.isoformat()
    ('2026-12-01T00:00:00+00:00', '2027-01-01T00:00:00+00:00')
    >>> [t.isoformat() for t in period_bounds(datetime(2026, 3, 1, 10), period="day")]
    ['2026-03-01T00:00:00+00:00', '2026-03-02T00:00:00+00:00']
    """
    if period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}, got {period!r}")
    m = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    if period == "day":
        start = datetime(m.year, m.month, m.day, tzinfo=UTC)
        return start, start + timedelta(days=1)
    start = datetime(m.year, m.month, 1, tzinfo=UTC)
    end = datetime(m.year + (m.month == 12), m.month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def period_label(start: datetime, *, period: Period) -> str:
    """``2026-03`` for a month, ``2026-03-14`` for a day (sorts chronologically).

    >>> period_label(datetime(2026, 3, 14, tzinfo=UTC), period="month")
    '2026-03'
    """
    return start.strftime("%Y-%m-%d" if period == "day" else "%Y-%m")


def booking_moment(occurred_at: datetime, booked_period_start: datetime) -> datetime:
    """When a revocation counts: its event, or the start of the later open period it landed in.

    >>> booking_moment(datetime(2026, 3, 5, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)).day
    1
    >>> booking_moment(datetime(2026, 3, 5), datetime(2026, 3, 1)).isoformat()
    '2026-03-05T00:00:00+00:00'
    """
    a = occurred_at.replace(tzinfo=UTC) if occurred_at.tzinfo is None else occurred_at
    b = (
        booked_period_start.replace(tzinfo=UTC)
        if booked_period_start.tzinfo is None
        else booked_period_start
    )
    return max(a.astimezone(UTC), b.astimezone(UTC))
