"""Billing meters: how many outcomes were verified, per UTC day or month, from ``meter_entries``.

What a billing system pulls: "verified outcomes for tenant T in ``[from, to)``, by agent and
tier, final or provisional". The count is the sum of the signed entries :mod:`ledger.bookings`
wrote, through the ``ix_meter_entries_meter`` index, in one grouped query.

Rules:

- A verified outcome counts +1 in the window holding its booking: its verification anchor (last
  customer message, else ``closed_at``, else the last timed message, else receipt), or, when
  that window was already final or closed, the moment it was booked (``late_arrival``,
  ``moved``). A count taken back from a final window is a -1 where it was booked
  (``withdrawn``, or a revocation: ``reopened``, ``csat_low``, ``human_overturn``). A row's
  ``value`` is the net count; ``adjustments`` lists the entries other than ``verified`` by
  reason (signed).
- Windows are UTC days or months, half-open, clipped to ``[since, until)``: a request from
  March 10 to April 5 by month has the windows ``[Mar 10, Apr 1)`` and ``[Apr 1, Apr 5)``.
- A row is ``final`` when its billing period is closed, or when its window ended at least
  :data:`ledger.bookings.SETTLE_HOURS` (96 h) before ``now`` (to the hour) and every outcome
  in it has passed its own rubric's window + 24 h grace; else ``provisional``. Each read
  publishes how far windows are final (:func:`ledger.bookings.publish_final_through`), and no
  entry is ever booked into a final or closed window: **a final row never changes**.
- Empty windows are left out: a (window, group) without entries has no row (a zero is the
  absence of a row, which keeps a day-by-agent meter small).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa

from judge.models import as_utc
from ledger.dimensions import GroupByError, parse_group_by

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

__all__ = [
    "DIMENSIONS",
    "MAX_WINDOWS",
    "WINDOWS",
    "MeterError",
    "count_windows",
    "meter_query",
    "verified_outcomes",
    "windows_of",
]

Window = Literal["day", "month"]
WINDOWS: tuple[Window, ...] = ("day", "month")
#: What a meter can be grouped by (columns of ``outcome_facts``).
DIMENSIONS = ("agent", "tier", "agent_version", "model_path")
#: At most this many windows per request (about 2.7 years by day): the answer stays small.
MAX_WINDOWS = 1000


class MeterError(ValueError):
    """A meter request that cannot be answered; ``field`` names the offending argument."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _aware(field: str, moment: object) -> datetime:
    if not isinstance(moment, datetime):
        raise MeterError(field, f"{field} must be a datetime, got {type(moment).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise MeterError(
            field,
            f"{field} must be timezone-aware (UTC), e.g. 2026-03-01T00:00:00Z; got "
            f"{moment.isoformat()} without a UTC offset",
        )
    return moment.astimezone(UTC)


def count_windows(since: datetime, until: datetime, window: Window) -> int:
    """How many UTC ``window``\\ s the half-open ``[since, until)`` touches (aware times).

    >>> count_windows(datetime(2026, 3, 10, tzinfo=UTC), datetime(2026, 4, 5, tzinfo=UTC), "month")
    2
    >>> count_windows(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC), "day")
    1
    """
    last = until - timedelta(microseconds=1)
    if window == "day":
        return (last.date() - since.date()).days + 1
    return (last.year * 12 + last.month) - (since.year * 12 + since.month) + 1


def _check(
    since: object, until: object, window: object, group_by: object, now: object
) -> tuple[datetime, datetime, Window, list[str], datetime]:
    start, end = _aware("since", since), _aware("until", until)
    if start >= end:
        raise MeterError(
            "since",
            f"since ({start.isoformat()}) must be before until ({end.isoformat()}): the range "
            "is half-open [since, until)",
        )
    if window not in WINDOWS:
        raise MeterError("window", f"window must be one of {', '.join(WINDOWS)}, got {window!r}")
    if isinstance(group_by, str) or not isinstance(group_by, Sequence):
        raise MeterError("group_by", f"group_by must be a list of {', '.join(DIMENSIONS)}")
    try:
        dims = parse_group_by(group_by, DIMENSIONS)
    except GroupByError as exc:
        raise MeterError("group_by", str(exc)) from None
    n = count_windows(start, end, window)
    if n > MAX_WINDOWS:
        hint = "use window=month or a shorter range" if window == "day" else "use a shorter range"
        raise MeterError(
            "until",
            f"[since, until) spans {n} {window} windows, more than {MAX_WINDOWS}: {hint}",
        )
    at = datetime.now(UTC) if now is None else _aware("now", now)
    return start, end, window, dims, at


def windows_of(since: datetime, until: datetime, window: Window) -> list[tuple[datetime, datetime]]:
    """The UTC windows of ``[since, until)``, clipped to it, in order (aware times).

    >>> [(a.day, b.day) for a, b in windows_of(datetime(2026, 3, 30, 12, tzinfo=UTC),
    ...                                        datetime(2026, 4, 2, tzinfo=UTC), "day")]
    [(30, 31), (31, 1), (1, 2)]
    """
    from ledger.report_periods import period_bounds

    out = []
    cursor = since
    while cursor < until:
        try:
            end = min(period_bounds(cursor, period=window)[1], until)
        except (OverflowError, ValueError):  # the window ends after datetime.max: clip it
            end = until
        out.append((cursor, end))
        cursor = end
    return out


def _bucket(dialect: str, window: Window, column: Any, starts: list[datetime]) -> Any:
    """Which window a row falls in, computed by the database (mapped back by :func:`_which`).

    One window (a billing month): a constant, nothing computed per row. PostgreSQL:
    ``width_bucket`` over the windows' starts (the 1-based window number; a binary search,
    cheaper per row than ``date_trunc(timezone('UTC', ...))``, and exact at any session time
    zone). SQLite: the day or month prefix of the stored UTC text ('YYYY-MM-DD HH:MM:SS...',
    see ledger.tables.UTCDateTime).
    """
    if len(starts) == 1:
        return sa.literal(1, type_=sa.Integer())
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY

        thresholds = sa.cast(
            sa.bindparam("starts", value=starts, type_=ARRAY(sa.DateTime(timezone=True))),
            ARRAY(sa.DateTime(timezone=True)),
        )
        return sa.func.width_bucket(column, thresholds, type_=sa.Integer())
    return sa.func.substr(column, 1, 10 if window == "day" else 7, type_=sa.String())


def _which(
    raw: Any, windows: list[tuple[datetime, datetime]], window: Window
) -> tuple[datetime, datetime]:
    if isinstance(raw, int):
        return windows[raw - 1]
    # SQLite's label: the aligned window start, clipped like the windows are.
    moment = datetime.fromisoformat(str(raw) if window == "day" else f"{raw}-01")
    moment = max(moment.replace(tzinfo=UTC), windows[0][0])
    for w_start, w_end in windows:
        if w_start <= moment < w_end:
            return w_start, w_end
    raise AssertionError(f"window {raw!r} outside the requested range")  # pragma: no cover


def meter_query(
    dialect: str,
    tenant: str,
    *,
    since: datetime,
    until: datetime,
    window: Window,
    group_by: Sequence[str],
) -> Any:
    """The one grouped query behind :func:`verified_outcomes` (exposed for the benchmark).

    Columns: the window (see :func:`_bucket`), each ``group_by`` dimension, the entries'
    reason, their net count and the latest ``final_at``. The ``WHERE`` is the leading key of
    ``ix_meter_entries_meter``.
    """
    from ledger.service_tables import MeterEntryRow

    entries = MeterEntryRow.__table__  # type: ignore[attr-defined]
    starts = [start for start, _ in windows_of(since, until, window)]
    bucket = _bucket(dialect, window, entries.c.booked_at, starts).label("window")
    dims = [entries.c[d] for d in group_by]
    return (
        sa.select(
            bucket,
            *dims,
            entries.c.reason,
            sa.func.sum(entries.c.delta).label("value"),
            sa.func.max(entries.c.final_at),
        )
        .where(
            entries.c.tenant == tenant,
            entries.c.booked_at >= since,
            entries.c.booked_at < until,
        )
        .group_by(bucket, *dims, entries.c.reason)
    )


def _closed_periods(conn: Any, tenant: str) -> dict[datetime, datetime | None]:
    """Start -> closed_at of the tenant's closed billing periods."""
    from ledger.tables import BillingPeriodRow

    periods = BillingPeriodRow.__table__  # type: ignore[attr-defined]
    rows = conn.execute(
        sa.select(periods.c.start, periods.c.closed_at).where(
            periods.c.tenant == tenant, periods.c.status == "closed"
        )
    ).all()
    return {as_utc(start): closed_at for start, closed_at in rows}


def _ceil_hour(moment: datetime) -> datetime:
    floor = moment.replace(minute=0, second=0, microsecond=0)
    return floor if floor == moment else floor + timedelta(hours=1)


def verified_outcomes(
    engine: Engine,
    tenant: str,
    *,
    since: datetime,
    until: datetime,
    window: Window = "day",
    group_by: Sequence[str] = (),
    now: datetime | None = None,
    read_engine: Engine | None = None,
) -> list[dict[str, Any]]:
    """Verified outcomes per UTC window (and group) in ``[since, until)``, final or provisional.

    Parameters
    ----------
    engine
        A migrated ledger database.
    tenant
        Only this tenant's outcomes are counted.
    since, until
        The half-open range ``[since, until)`` of window anchors; timezone-aware.
    window
        ``"day"`` or ``"month"`` (UTC), clipped to ``[since, until)``.
    group_by
        Any of :data:`DIMENSIONS` (``agent`` is the credited AI actor, ``agent_version`` is
        ``name@version``); none for one count per window.
    now
        The moment that decides ``final`` (default: the current time); timezone-aware.
    read_engine
        A read replica to count on (``OUTCOME_JUDGE_METER_READ_URL``): used when it has
        replayed the final mark this read publishes on ``engine``, else ``engine`` counts
        (:func:`ledger.replica.read_from`); final rows are the same either way.

    Returns
    -------
    list of dict
        ``{window_start, window_end, group, value, status, final_at}`` sorted by window then
        group (None last); ``final_at`` is when the row is (or becomes) final. Windows and groups
        without a verified outcome have no row.

    Raises
    ------
    MeterError
        Naive or reversed ``since``/``until``, an unknown ``window`` or dimension, or more than
        :data:`MAX_WINDOWS` windows; ``.field`` names the argument, the message the fix.

    Examples
    --------
    >>> from judge.models import Outcome
    >>> from judge.verdict import Verdict
    >>> from ledger.store import Ledger
    >>> ledger = Ledger.open("sqlite://", tenant="acme")
    >>> for oid, at in [("A", "2026-03-01T10:00:00Z"), ("B", "2026-03-31T12:00:00Z"),
    ...                 ("C", "2026-04-01T00:00:00Z")]:
    ...     o = Outcome.model_validate({"id": oid, "kind": "support_ticket", "conversation":
    ...         [{"role": "customer", "text": "hi", "at": at}], "agent": {"name": "fin"}})
    ...     v = Verdict(outcome_id=oid, decision="verified", confidence=0.9, tier="assumed",
    ...                 rubric="support-resolution@1", panel="p")
    ...     _ = ledger.record_result(o, v)
    >>> rows = verified_outcomes(ledger.engine, "acme", since=datetime(2026, 3, 15, tzinfo=UTC),
    ...     until=datetime(2026, 4, 2, tzinfo=UTC), window="month", group_by=["tier"],
    ...     now=datetime(2026, 4, 5, 12, tzinfo=UTC))
    >>> [(r["window_start"].date().isoformat(), r["window_end"].date().isoformat(),
    ...   r["group"], r["value"], r["status"]) for r in rows]
    [('2026-03-15', '2026-04-01', {'tier': 'assumed'}, 1, 'final'), ('2026-04-01', '2026-04-02', {'tier': 'assumed'}, 1, 'provisional')]
    >>> verified_outcomes(ledger.engine, "acme", since=datetime(2026, 4, 1, tzinfo=UTC),
    ...     until=datetime(2026, 3, 1, tzinfo=UTC))
    Traceback (most recent call last):
    ...
    ledger.meters.MeterError: since (2026-04-01T00:00:00+00:00) must be before until (2026-03-01T00:00:00+00:00): the range is half-open [since, until)
    >>> ledger.close()
    """  # noqa: E501
    from ledger.bookings import ADJUSTMENT_REASONS, SETTLE_HOURS, VERIFIED, publish_final_through
    from ledger.replica import read_from

    start, end, win, dims, at = _check(since, until, window, group_by, now)
    windows = windows_of(start, end, win)
    # Publish first: every row this read calls final is then closed to new bookings.
    through = publish_final_through(engine, tenant, at)

    def read(conn: Connection) -> tuple[list[Any], dict[datetime, datetime | None]]:
        query = meter_query(
            conn.dialect.name, tenant, since=start, until=end, window=win, group_by=dims
        )
        found = list(conn.execute(query).all())
        return found, _closed_periods(conn, tenant) if found else {}

    # A replica serves the read once it has replayed W (see ledger.replica), else the primary.
    found, closed = read_from(engine, read_engine, tenant, through, read)
    # Many rows share a window (one per group and reason): map each window once.
    bounds: dict[Any, tuple[datetime, datetime]] = {}
    cells: dict[tuple[Any, ...], dict[str, Any]] = {}
    for raw, *values, reason, count, final_at in found:
        if raw not in bounds:
            bounds[raw] = _which(raw, windows, win)
        w_start, w_end = bounds[raw]
        key = (w_start, *values)
        cell = cells.get(key)
        if cell is None:
            cell = cells[key] = {
                "window_start": w_start,
                "window_end": w_end,
                "group": dict(zip(dims, values, strict=True)),
                "value": 0,
                "adjustments": {},
                "last_final": final_at,
            }
        cell["value"] += int(count)
        cell["last_final"] = max(cell["last_final"], final_at)
        if reason != VERIFIED:
            cell["adjustments"][reason] = cell["adjustments"].get(reason, 0) + int(count)
    rows = []
    for cell in cells.values():
        w_end, last_final = cell.pop("window_end"), cell.pop("last_final")
        # final_at comes back timezone-aware UTC (ledger.tables.UTCDateTime).
        final_at = max(_ceil_hour(w_end) + timedelta(hours=SETTLE_HOURS), last_final)
        closed_at = closed.get(cell["window_start"].replace(
            day=1, hour=0, minute=0, second=0, microsecond=0))  # fmt: skip
        if closed_at is not None:
            final = True
            final_at = min(final_at, as_utc(closed_at))
        else:
            final = through is not None and w_end <= through and last_final <= at
        rows.append(
            {
                "window_start": cell["window_start"],
                "window_end": w_end,
                "group": cell["group"],
                "value": cell["value"],
                "adjustments": {
                    r: n
                    for r, n in sorted(
                        cell["adjustments"].items(),
                        key=lambda item: (item[0] not in ADJUSTMENT_REASONS, item[0]),
                    )
                },
                "status": "final" if final else "provisional",
                "final_at": final_at,
            }
        )
    rows.sort(
        key=lambda r: (
            r["window_start"],
            tuple((r["group"][d] is None, r["group"][d] or "") for d in dims),
        )
    )
    return rows
