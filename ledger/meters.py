"""Billing meters: how many outcomes were verified, per UTC day or month, from ``meter_entries``.

What a billing system pulls: "verified outcomes for tenant T in ``[from, to)``, by agent and
tier, final or provisional". The count is the sum of the signed entries :mod:`ledger.bookings`
wrote. Whole days that are final (or in a closed period) never change, so they are summed once,
when they become final, into ``meter_rollups`` (:mod:`ledger.meter_rollups`); a read takes those
days from there and counts only the rest (the provisional days, and days cut by ``[from, to)``)
from the entries, in one statement, with the same result as counting every entry
(:func:`verified_outcomes_raw`, the definition, which the tests compare it with).

Rules:

- A verified outcome counts +1 in the window holding its booking: its verification anchor (last
  customer message, else ``closed_at``, else the last timed message, else receipt), or, when
  that window was already final or closed, the moment it was booked (``late_arrival``,
  ``moved``). A count taken back from a final window is a -1 where it was booked
  (``withdrawn``, or a revocation: ``reopened``, ``csat_low``, ``human_overturn``,
  ``came_back``). A row's ``value`` is the net count; ``adjustments`` lists the entries other
  than ``verified`` by reason (signed).
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

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa

from judge.models import as_utc
from ledger.dimensions import GroupByError, parse_group_by

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from ledger.meter_rollups import Span

__all__ = [
    "DIMENSIONS",
    "MAX_WINDOWS",
    "WINDOWS",
    "MeterError",
    "count_windows",
    "meter_query",
    "verified_outcomes",
    "verified_outcomes_raw",
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


def _bucket(dialect: str, window: Window, column: Any, *, one_window: bool) -> Any:
    """Which window a row falls in, computed by the database (mapped back by :func:`_which`).

    One window (a billing month): a constant, nothing computed per row. PostgreSQL:
    ``width_bucket`` over the windows' starts (the parameter ``starts``; the 1-based window
    number; a binary search, cheaper per row than ``date_trunc(timezone('UTC', ...))``, and
    exact at any session time zone). SQLite: the day or month prefix of the stored UTC text
    ('YYYY-MM-DD HH:MM:SS...', see ledger.tables.UTCDateTime).
    """
    if one_window:
        return sa.literal(1, type_=sa.Integer())
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY

        starts = ARRAY(sa.DateTime(timezone=True))
        thresholds = sa.cast(sa.bindparam("starts", type_=starts), starts)
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


def _grouped(
    table: Any,
    moment: str,
    count: str,
    last: str,
    *,
    span: str,
    bucket: Any,
    group_by: Sequence[str],
    where: Sequence[Any] = (),
    grouped: bool = True,
) -> Any:
    """One grouped sum over ``table`` in the span whose bounds are the parameters
    ``<span>_start`` and ``<span>_end``: window, dimensions, reason, net count and latest
    ``final_at`` (``bucket`` maps the ``moment`` column to the window). Not ``grouped``: the
    rows themselves, for a table that already holds one row per window, group and reason."""
    at = table.c[moment]
    window = bucket(at).label("window")
    dims = [table.c[d] for d in group_by]
    value, final = table.c[count], table.c[last]
    if grouped:
        value, final = sa.func.sum(value), sa.func.max(final)
    query = sa.select(
        window, *dims, table.c.reason, value.label("value"), final.label("last_final")
    ).where(
        table.c.tenant == sa.bindparam("tenant"),
        *where,
        at >= sa.bindparam(f"{span}_start"),
        at < sa.bindparam(f"{span}_end"),
    )
    return query.group_by(window, *dims, table.c.reason) if grouped else query


@lru_cache(maxsize=512)
def _statement(
    dialect: str,
    window: Window,
    one_window: bool,
    group_by: tuple[str, ...],
    rolled: int,
    live: int,
) -> Any:
    """The meter's statement for one shape of request, built once (see :func:`meter_query`).

    Its values are parameters (:func:`_parameters`), so a repeated read skips building the
    statement and SQLAlchemy's cache-key walk over it (memoised on the object).
    """
    from ledger.bookings import VERIFIED
    from ledger.meter_rollups import group_mask
    from ledger.service_tables import MeterEntryRow, MeterRollupRow

    entries = MeterEntryRow.__table__  # type: ignore[attr-defined]
    rollups = MeterRollupRow.__table__  # type: ignore[attr-defined]

    def bucket(column: Any) -> Any:
        return _bucket(dialect, window, column, one_window=one_window)

    mask = [rollups.c.group_mask == group_mask(group_by)]  # the rows of this grouping only
    parts: list[Any] = [
        # A rolled day by day is one window: its rollup rows are already one per group and
        # reason, so they are read as they are (an index-only scan, no aggregate).
        _grouped(rollups, "day", "value", "last_final", span=f"r{i}", bucket=bucket,
                 group_by=group_by, where=mask, grouped=window != "day")
        for i in range(rolled)
    ] + [
        _grouped(entries, "booked_at", "delta", "final_at", span=f"l{i}", bucket=bucket,
                 group_by=group_by)
        for i in range(live)
    ]  # fmt: skip
    joined: Any = parts[0] if len(parts) == 1 else sa.union_all(*parts)
    sums = joined.subquery("parts")
    keys = [sums.c.window, *(sums.c[d] for d in group_by)]
    # The entries other than verified, as 'reason:count,...' (reasons are the ledger's own
    # identifiers: no ',' or ':'); a reason may come once per span (the caller adds them up);
    # NULL when there are none.
    adjusted = sa.case(
        (sums.c.reason != VERIFIED, sums.c.reason + ":" + sa.cast(sums.c.value, sa.String())),
        else_=sa.null(),
    )
    # The latest final_at as a naive UTC time on both databases (made aware per row returned,
    # not per row read): PostgreSQL's timestamptz would come back in the session's zone
    # (``Etc/UTC``), and comparing datetimes of two zones costs several times more per row.
    latest: Any = sa.func.max(sums.c.last_final)
    latest = (
        sa.func.timezone("UTC", latest, type_=sa.DateTime())
        if dialect == "postgresql"
        else sa.type_coerce(latest, sa.DateTime())
    )
    return sa.select(
        *keys,
        sa.func.sum(sums.c.value, type_=sa.BigInteger()),
        latest,
        # aggregate_strings would render its separator on every execution (post-compile).
        getattr(sa.func, "string_agg" if dialect == "postgresql" else "group_concat")(
            adjusted, sa.literal_column("','"), type_=sa.String()
        ),
    ).group_by(*keys)


def _parameters(
    dialect: str,
    tenant: str,
    starts: list[datetime],
    rolled: Sequence[Span],
    live: Sequence[Span],
) -> dict[str, Any]:
    values: dict[str, Any] = {"tenant": tenant}
    if dialect == "postgresql" and len(starts) > 1:
        values["starts"] = starts
    for prefix, spans in (("r", rolled), ("l", live)):
        for i, (lo, hi) in enumerate(spans):
            values[f"{prefix}{i}_start"], values[f"{prefix}{i}_end"] = lo, hi
    return values


def meter_query(
    dialect: str,
    tenant: str,
    *,
    since: datetime,
    until: datetime,
    window: Window,
    group_by: Sequence[str],
    rolled: Sequence[Span] = (),
) -> tuple[Any, dict[str, Any]]:
    """The one statement behind :func:`verified_outcomes`, and its parameters.

    Rows: one per window and group, with the window (see :func:`_bucket`), each ``group_by``
    dimension, the net count, the latest ``final_at`` and the adjustments as
    ``reason:count,...`` (NULL when none). The whole days in ``rolled`` are read from the
    rows of ``meter_rollups`` grouped like this request (``ix_meter_rollups_meter``), the rest
    of ``[since, until)`` from ``meter_entries`` (``ix_meter_entries_meter``): one ``SELECT``
    per span, so each is a range scan of its index (grouped per window, group and reason,
    except rolled days read by day, which are already), joined by ``UNION ALL`` and summed per
    window and group. The statement depends only on the request's shape (built once per
    shape); the values are parameters.
    """
    return _query(dialect, tenant, windows_of(since, until, window), window, group_by, rolled)


def _query(
    dialect: str,
    tenant: str,
    windows: list[tuple[datetime, datetime]],
    window: Window,
    group_by: Sequence[str],
    rolled: Sequence[Span],
) -> tuple[Any, dict[str, Any]]:
    """:func:`meter_query` for the windows of ``[since, until)`` already worked out."""
    from ledger.meter_rollups import live_spans

    since, until = windows[0][0], windows[-1][1]
    starts = [start for start, _ in windows]
    live = live_spans(since, until, rolled)
    statement = _statement(
        dialect, window, len(starts) == 1, tuple(group_by), len(rolled), len(live)
    )
    return statement, _parameters(dialect, tenant, starts, rolled, live)


def _closed_periods(conn: Any, tenant: str) -> dict[datetime, datetime | None]:
    """Start -> closed_at of the tenant's closed billing periods."""
    return _final_state(conn, tenant)[2]


def _final_state(
    conn: Any, tenant: str
) -> tuple[bool, datetime | None, dict[datetime, datetime | None]]:
    """Whether the tenant exists, its W (``meter_final_through``) and its closed periods
    (start -> closed_at), in one statement (a meter read's first round trip)."""
    exists, through, closed = False, None, {}
    for kind, moment, closed_at in conn.execute(_final_state_statement(), {"tenant": tenant}):
        if kind == "w":
            exists, through = True, None if moment is None else as_utc(moment)
        else:
            closed[as_utc(moment)] = closed_at
    return exists, through, closed


@lru_cache(maxsize=1)
def _final_state_statement() -> Any:
    from ledger.columns import UTCDateTime
    from ledger.tables import BillingPeriodRow, TenantRow

    tenants = TenantRow.__table__  # type: ignore[attr-defined]
    periods = BillingPeriodRow.__table__  # type: ignore[attr-defined]
    tenant: Any = sa.bindparam("tenant")
    return sa.union_all(
        sa.select(
            sa.literal_column("'w'").label("kind"),
            tenants.c.meter_final_through.label("at"),
            sa.type_coerce(sa.null(), UTCDateTime()).label("closed_at"),
        ).where(tenants.c.name == tenant),
        sa.select(sa.literal_column("'c'"), periods.c.start, periods.c.closed_at).where(
            periods.c.tenant == tenant, periods.c.status == "closed"
        ),
    )


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
    return _verified(
        engine, tenant, since, until, window, group_by, now, rollups=True, read_engine=read_engine
    )


def verified_outcomes_raw(
    engine: Engine,
    tenant: str,
    *,
    since: datetime,
    until: datetime,
    window: Window = "day",
    group_by: Sequence[str] = (),
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """:func:`verified_outcomes` counted from every entry, without the rollups.

    The definition the rollups must match (the tests' oracle, the benchmark's baseline): the
    same arguments, checks and rows, one grouped sum over ``meter_entries``.
    """
    return _verified(engine, tenant, since, until, window, group_by, now, rollups=False)


def _verified(
    engine: Engine,
    tenant: str,
    since: object,
    until: object,
    window: object,
    group_by: object,
    now: object,
    *,
    rollups: bool,
    read_engine: Engine | None = None,
) -> list[dict[str, Any]]:
    from ledger.bookings import publish_final_through, settled_through
    from ledger.replica import read_from

    start, end, win, dims, at = _check(since, until, window, group_by, now)
    # Usually W is current: two statements read W and the closed periods, then the counts.
    # Else W is published first (a write, which rolls up the days it makes final) and the read
    # starts over: every row this read calls final is then closed to new bookings.
    with _reading(engine) as conn:
        exists, through, closed = _final_state(conn, tenant)
        stale = exists and (through is None or through < settled_through(at))
        if not stale and read_engine is None:
            return _count(conn, tenant, start, end, win, dims, at, through, closed, rollups)
    if stale:
        publish_final_through(engine, tenant, at)
        with _reading(engine) as conn:
            _, through, closed = _final_state(conn, tenant)
            if read_engine is None:
                return _count(conn, tenant, start, end, win, dims, at, through, closed, rollups)

    def read(conn: Connection) -> list[dict[str, Any]]:
        # The replica's own W and closed periods: its rollups committed with them.
        _, seen, shut = _final_state(conn, tenant)
        return _count(conn, tenant, start, end, win, dims, at, seen, shut, rollups)

    # A replica serves the read once it has replayed W (see ledger.replica), else the primary.
    return read_from(engine, read_engine, tenant, through, read)


@contextmanager
def _reading(engine: Engine) -> Iterator[Any]:
    """A connection for a meter read.

    PostgreSQL: in autocommit, so no BEGIN and ROLLBACK round trips. Each statement reads
    committed data (as in the READ COMMITTED transaction it would be otherwise), and the
    rollups of a W or a closed period committed with it, so they are visible to the count
    that follows the statement which read them. SQLite: a read-only transaction (one
    snapshot, no write lock).
    """
    from ledger.db import session

    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            yield conn.execution_options(isolation_level="AUTOCOMMIT")
        return
    with session(engine, readonly=True) as db:
        yield db.connection()


def _count(
    conn: Any,
    tenant: str,
    start: datetime,
    end: datetime,
    win: Window,
    dims: list[str],
    at: datetime,
    through: datetime | None,
    closed: dict[datetime, datetime | None],
    rollups: bool,
) -> list[dict[str, Any]]:
    """The meter's rows, given W and the closed periods read in this transaction."""
    from ledger.meter_rollups import rolled_spans

    # The days rolled by this W or a closed period read here: their rollups committed with
    # them, so they are visible to the statement below.
    rolled = rolled_spans(start, end, through, closed) if rollups else []
    windows = windows_of(start, end, win)
    query, values = _query(conn.dialect.name, tenant, windows, win, dims, rolled)
    found = conn.execute(query, values).all()
    return _rows(found, windows, win, dims, closed, through, at)


def _adjustments(text: str | None) -> dict[str, int]:
    """``{reason: count}`` from the statement's ``reason:count,...``, in the order the
    adjustments are listed (:data:`ledger.bookings.ADJUSTMENT_REASONS` first, then by name).

    >>> _adjustments(None), _adjustments("late_arrival:2")
    ({}, {'late_arrival': 2})
    >>> _adjustments("withdrawn:-1,late_arrival:2,late_arrival:1")
    {'late_arrival': 3, 'withdrawn': -1}
    """
    if text is None:
        return {}
    if "," not in text:  # the usual case: one reason, one span
        reason, _, count = text.rpartition(":")
        return {reason: int(count)}
    from ledger.bookings import ADJUSTMENT_REASONS

    found: dict[str, int] = {}
    for item in text.split(","):
        reason, _, count = item.rpartition(":")
        found[reason] = found.get(reason, 0) + int(count)
    return {r: found[r] for r in sorted(found, key=lambda r: (r not in ADJUSTMENT_REASONS, r))}


def _rows(
    found: Sequence[Any],
    windows: list[tuple[datetime, datetime]],
    win: Window,
    dims: list[str],
    closed: dict[datetime, datetime | None],
    through: datetime | None,
    at: datetime,
) -> list[dict[str, Any]]:
    """The meter's rows from the statement's (one per window and group), in order.

    A day-by-group read returns hundreds of rows: what depends only on the window (its bounds,
    when it settles, its period's close) is worked out once per window, not per row.
    """
    from ledger.bookings import SETTLE_HOURS

    settle = timedelta(hours=SETTLE_HOURS)
    width = len(dims) + 1  # the window label and the group's values
    # window label -> (start, end, settled moment and the same as naive UTC, its period's
    # closed_at or None, final by W). The rows' latest final_at come naive UTC (see
    # _statement) and are compared naive: comparing aware datetimes costs more, per row.
    info: dict[Any, tuple[datetime, datetime, datetime, datetime, datetime | None, bool]] = {}
    at_naive = at.astimezone(UTC).replace(tzinfo=None)
    # Each distinct group (a read by day repeats each one per day) is ranked once, by value
    # with None last: the rows sort by (window label, rank), the labels sorting in window
    # order. (A server-side ORDER BY, in code-point order with COLLATE "C", cost more than
    # this.) The group's dict is made once too, and copied per row.
    keyed = [(row[0], row[1:width], row) for row in found]
    groups: dict[tuple[Any, ...], Any] = dict.fromkeys(values for _, values, _ in keyed)
    for rank, values in enumerate(
        sorted(groups, key=lambda values: [(v is None, v or "") for v in values])
    ):
        groups[values] = (rank, dict(zip(dims, values, strict=True)))
    keyed.sort(key=lambda item: (item[0], groups[item[1]][0]))

    rows = []
    parsed: dict[str, dict[str, int]] = {}  # a read repeats a few adjustment texts many times
    for raw, values, row in keyed:
        value, last, adjusted = row[width:]
        window = info.get(raw)
        if window is None:
            w_start, w_end = _which(raw, windows, win)
            closed_at = closed.get(w_start.replace(day=1, hour=0, minute=0, second=0,
                                                   microsecond=0))  # fmt: skip
            settled = _ceil_hour(w_end) + settle
            window = info[raw] = (
                w_start, w_end, settled, settled.replace(tzinfo=None),
                None if closed_at is None else as_utc(closed_at),
                through is not None and w_end <= through,
            )  # fmt: skip
        w_start, w_end, settled, settled_naive, closed_at, by_w = window
        final_at = settled if settled_naive >= last else last.replace(tzinfo=UTC)
        if closed_at is not None:
            final, final_at = True, min(final_at, closed_at)
        else:
            final = by_w and last <= at_naive
        if adjusted is None:
            adjustments = {}
        else:
            known = parsed.get(adjusted)
            if known is None:
                known = parsed[adjusted] = _adjustments(adjusted)
            adjustments = known.copy()
        rows.append(
            {
                "window_start": w_start,
                "window_end": w_end,
                "group": groups[values][1].copy(),
                "value": int(value),
                "adjustments": adjustments,
                "status": "final" if final else "provisional",
                "final_at": final_at,
            }
        )
    return rows
