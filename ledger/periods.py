"""Billing periods (UTC months) and revocations booked into them.

A billing period is a UTC calendar month, half-open ``[start, end)``: midnight UTC on the 1st
belongs to the month that starts then, not to the one before. A period is ``open`` until it is
closed (:meth:`Periods.close_period`); a closed period is frozen: nothing is ever booked into it
again, so figures already billed are never rewritten.

A revocation takes back a verdict after the fact: the outcome was reopened, a low CSAT arrived
late, or a human label overturned the verdict. :meth:`Periods.book_revocation` books it into the
period of the revoking event if that period is still open, else into the earliest open period
after it (the current one), with the reason and the moment the event happened.

Every operation is one transaction. Concurrent writers are safe: on PostgreSQL a booking locks
its period row (``SELECT ... FOR UPDATE``), so a period being closed at the same moment either
receives the booking before it closes or not at all; on SQLite write transactions are serialised
(``BEGIN IMMEDIATE``, see :mod:`ledger.db`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from sqlmodel import Session, col, select

from ledger.db import session
from ledger.integrity import DEFAULT_FUTURE_TOLERANCE
from ledger.store import _insert_ignore, check_tenant_name, ensure_tenant
from ledger.tables import BillingPeriodRow, RevocationRow, TenantRow, VerdictRow, utcnow

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

PeriodStatus = Literal["open", "closed"]

#: The standard revocation reasons (any short lowercase identifier is accepted).
REASON_REOPENED = "reopened"
REASON_CSAT_LOW = "csat_low"
REASON_HUMAN_OVERTURN = "human_overturn"
REASON_CAME_BACK = "came_back"
STANDARD_REASONS = (REASON_REOPENED, REASON_CSAT_LOW, REASON_HUMAN_OVERTURN, REASON_CAME_BACK)

_MAX_REASON_CHARS = 32
_MAX_OUTCOME_ID_CHARS = 200


class PeriodNotEndedError(ValueError):
    """A period cannot be closed before its end has passed."""


class UnknownVerdictError(ValueError):
    """A revocation names a verdict this tenant does not have for that outcome."""


@dataclass(frozen=True)
class BillingPeriod:
    """One billing period ``[start, end)`` of one tenant (UTC)."""

    tenant: str
    start: datetime
    end: datetime
    status: PeriodStatus
    closed_at: datetime | None

    @property
    def is_open(self) -> bool:
        return self.status == "open"


@dataclass(frozen=True)
class Revocation:
    """One booked revocation.

    ``occurred_at`` is when the revoking event happened; ``booked_period_start`` is the start of
    the (open) period it was booked in, which is later than ``occurred_at``'s period when that one
    was already closed.
    """

    pk: int
    tenant: str
    outcome_id: str
    verdict_pk: int
    reason: str
    detail: str | None
    booked_period_start: datetime
    occurred_at: datetime
    created_at: datetime
    #: The moment it counts in the meters (in ``booked_period_start``'s period); None for
    #: revocations booked before migration 0006.
    booked_at: datetime | None = None


@dataclass(frozen=True)
class Booking:
    """What :meth:`Periods.book_revocation` did: ``created`` is False for a repeat booking."""

    revocation: Revocation
    created: bool


def _utc(moment: datetime, name: str) -> datetime:
    if not isinstance(moment, datetime):
        raise ValueError(f"{name} must be a datetime, got {type(moment).__name__}: {moment!r}")
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def month_period(at: datetime) -> tuple[datetime, datetime]:
    """The UTC month containing ``at``, half-open ``[start, end)``; naive ``at`` means UTC.

    >>> from datetime import datetime, UTC
    >>> start, end = month_period(datetime(2026, 3, 31, 23, 59, 59, tzinfo=UTC))
    >>> start.isoformat(), end.isoformat()
    ('2026-03-01T00:00:00+00:00', '2026-04-01T00:00:00+00:00')
    >>> month_period(datetime(2026, 4, 1))[0].isoformat()  # midnight of the 1st starts April
    '2026-04-01T00:00:00+00:00'
    >>> month_period(datetime(2026, 12, 15))[1].isoformat()
    '2027-01-01T00:00:00+00:00'
    """
    moment = _utc(at, "at")
    start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if start.month == 12:
        end = start.replace(year=start.year + 1, month=1)
    else:
        end = start.replace(month=start.month + 1)
    return start, end


def _lock_tenant(db: Session, tenant: str) -> None:
    """PostgreSQL: the tenant row FOR UPDATE (waits for meter bookings in flight)."""
    if db.get_bind().dialect.name != "postgresql":
        return  # SQLite: write transactions are serialised already
    db.connection().execute(
        sa.select(TenantRow.__table__.c.name)  # type: ignore[attr-defined]
        .where(TenantRow.__table__.c.name == tenant)  # type: ignore[attr-defined]
        .with_for_update()
    )


def _roll_closed(db: Session, tenant: str, start: datetime) -> None:
    """Roll up the meter days of a period this transaction closed (the tenant row is held)."""
    from ledger.meter_rollups import roll_closed_month

    tenants = TenantRow.__table__  # type: ignore[attr-defined]
    conn = db.connection()
    through = conn.execute(
        sa.select(tenants.c.meter_final_through).where(tenants.c.name == tenant)
    ).scalar_one_or_none()
    roll_closed_month(conn, tenant, start, through)


def _period(row: BillingPeriodRow) -> BillingPeriod:
    status: PeriodStatus = "closed" if row.status == "closed" else "open"
    return BillingPeriod(row.tenant, row.start, row.end, status, row.closed_at)


def _revocation(row: RevocationRow) -> Revocation:
    assert row.pk is not None
    return Revocation(
        pk=row.pk,
        tenant=row.tenant,
        outcome_id=row.outcome_id,
        verdict_pk=row.verdict_pk,
        reason=row.reason,
        detail=row.detail,
        booked_period_start=row.booked_period_start,
        occurred_at=row.occurred_at,
        created_at=row.created_at,
        booked_at=row.booked_at,
    )


class Periods:
    """Billing periods and revocations of one tenant over one migrated ledger database.

    Parameters
    ----------
    engine
        From :func:`ledger.db.make_engine`, migrated (:func:`ledger.schema.migrate`).
    tenant
        Every period and revocation written and read belongs to this tenant.
    future_tolerance
        How far after now a revocation's ``at`` may lie (clock skew); later ones are refused.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> from ledger.db import make_engine
    >>> from ledger.schema import migrate
    >>> engine = make_engine("sqlite://"); migrate(engine)
    >>> periods = Periods(engine, tenant="acme")
    >>> march = periods.open_period_for(datetime(2026, 3, 10, tzinfo=UTC))
    >>> march.status, march.end.isoformat()
    ('open', '2026-04-01T00:00:00+00:00')
    >>> periods.close_period(march.start).status
    'closed'
    """

    def __init__(
        self,
        engine: Engine,
        *,
        tenant: str,
        future_tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE,
    ) -> None:
        if not isinstance(future_tolerance, timedelta) or future_tolerance < timedelta(0):
            raise ValueError(f"future_tolerance must be a timedelta >= 0, got {future_tolerance!r}")
        self.engine = engine
        self.tenant = check_tenant_name(tenant)
        self.future_tolerance = future_tolerance
        self._tenant_ready = False

    def _ready(self) -> None:
        if not self._tenant_ready:
            ensure_tenant(self.engine, self.tenant)
            self._tenant_ready = True

    # -- periods -----------------------------------------------------------------------------

    def _get(self, db: Session, start: datetime, *, lock: bool = False) -> BillingPeriodRow | None:
        query = select(BillingPeriodRow).where(
            BillingPeriodRow.tenant == self.tenant, BillingPeriodRow.start == start
        )
        if lock:
            query = query.with_for_update()
        return db.exec(query).one_or_none()

    def _ensure(self, db: Session, start: datetime, *, lock: bool = False) -> BillingPeriodRow:
        """The period starting at ``start`` (a month start), inserted open if missing."""
        _, end = month_period(start)
        values = {"tenant": self.tenant, "start": start, "end": end, "status": "open"}
        _insert_ignore(db, BillingPeriodRow, values, ["tenant", "start"])
        row = self._get(db, start, lock=lock)
        assert row is not None
        return row

    def open_period_for(self, at: datetime) -> BillingPeriod:
        """The period (UTC month) containing ``at``, created ``open`` if it does not exist yet.

        An existing period is returned as it is: check :attr:`BillingPeriod.status`, a closed
        period stays closed.
        """
        start, _ = month_period(at)
        self._ready()
        with session(self.engine) as db:
            return _period(self._ensure(db, start))

    def period(self, start: datetime) -> BillingPeriod | None:
        """The period starting at ``start``, or None if it was never opened or closed."""
        start = self._check_start(start)
        with session(self.engine, readonly=True) as db:
            row = self._get(db, start)
            return None if row is None else _period(row)

    def periods(self) -> list[BillingPeriod]:
        """This tenant's periods, oldest first."""
        with session(self.engine, readonly=True) as db:
            rows = db.exec(
                select(BillingPeriodRow)
                .where(BillingPeriodRow.tenant == self.tenant)
                .order_by(col(BillingPeriodRow.start))
            ).all()
            return [_period(row) for row in rows]

    def _check_start(self, start: datetime) -> datetime:
        start = _utc(start, "start")
        month_start, _ = month_period(start)
        if start != month_start:
            raise ValueError(
                f"start must be the first instant of a UTC month (a period start), got "
                f"{start.isoformat()}; did you mean {month_start.isoformat()}?"
            )
        return start

    def close_period(self, start: datetime, *, now: datetime | None = None) -> BillingPeriod:
        """Close the period starting at ``start``: nothing is booked into it ever again.

        Closing an already closed period changes nothing (its ``closed_at`` stays). A period
        never opened is recorded as closed (so no late booking can land in it either).

        Parameters
        ----------
        start
            The period's start: midnight UTC on the 1st of a month.
        now
            The current time (default: the clock); the period's end must not be after it.

        Raises
        ------
        PeriodNotEndedError
            The period ends after ``now``: it can still receive outcomes.
        ValueError
            ``start`` is not the start of a UTC month.
        """
        start = self._check_start(start)
        moment = utcnow() if now is None else _utc(now, "now")
        _, end = month_period(start)
        if end > moment:
            raise PeriodNotEndedError(
                f"cannot close the period [{start.isoformat()}, {end.isoformat()}) of tenant "
                f"{self.tenant!r}: it ends after now ({moment.isoformat()}) and can still "
                f"receive outcomes; close it on or after {end.isoformat()}"
            )
        self._ready()
        with session(self.engine) as db:
            # The tenant row FOR UPDATE: bookings in flight (which hold it FOR SHARE and read the
            # closed periods) finish first, and bookings after this see the period closed.
            _lock_tenant(db, self.tenant)
            values = {
                "tenant": self.tenant,
                "start": start,
                "end": end,
                "status": "closed",
                "closed_at": moment,
            }
            closed = _insert_ignore(db, BillingPeriodRow, values, ["tenant", "start"])
            if not closed:
                result: Any = db.execute(
                    sa.update(BillingPeriodRow)
                    .where(
                        col(BillingPeriodRow.tenant) == self.tenant,
                        col(BillingPeriodRow.start) == start,
                        col(BillingPeriodRow.status) == "open",
                    )
                    .values(status="closed", closed_at=moment)
                )
                closed = result.rowcount == 1
            if closed:  # its days are final now: roll them up with the close
                _roll_closed(db, self.tenant, start)
            db.expire_all()
            row = self._get(db, start)
            assert row is not None
            return _period(row)

    # -- revocations -------------------------------------------------------------------------

    def book_revocation(
        self,
        outcome_id: str,
        *,
        verdict_pk: int,
        reason: str,
        detail: str | None = None,
        at: datetime,
        now: datetime | None = None,
    ) -> Booking:
        """Book the revocation of a verdict, idempotently, into an open period and the meters.

        It is booked at ``at`` when that moment is still bookable (its period is open, or does
        not exist yet and is created open, and its meter window was not published as final),
        otherwise at the current moment, in the earliest period that is not closed (see
        :class:`ledger.bookings.BookingClock`). A closed period or a final meter window is never
        written to. When the outcome counts in the meters by this verdict (or an older one), a
        -1 meter entry takes it back at the same moment. The same (outcome id, verdict, reason)
        booked again stores nothing and returns the first booking.

        Parameters
        ----------
        outcome_id
            The outcome whose verdict is revoked.
        verdict_pk
            The revoked verdict (``RecordedResult.verdict_pk``); it must belong to this tenant
            and this outcome.
        reason
            Why: ``"reopened"``, ``"csat_low"``, ``"human_overturn"``, ``"came_back"``
            (:data:`STANDARD_REASONS`)
            or another short lowercase identifier.
        detail
            Free text for auditors (e.g. "CSAT 2 received 2026-03-04T09:00Z").
        at
            When the revoking event happened (naive means UTC); not in the future.
        now
            The booking time (default: the clock).

        Returns
        -------
        Booking
            The stored revocation and whether this call created it.

        Raises
        ------
        UnknownVerdictError
            This tenant has no verdict ``verdict_pk`` for ``outcome_id``.
        ValueError
            An argument is malformed or ``at`` lies in the future; nothing is written.
        """
        if not isinstance(outcome_id, str) or not outcome_id.strip():
            raise ValueError("outcome_id must be a non-empty string")
        if len(outcome_id) > _MAX_OUTCOME_ID_CHARS:
            raise ValueError(f"outcome_id must be at most {_MAX_OUTCOME_ID_CHARS} characters")
        if isinstance(verdict_pk, bool) or not isinstance(verdict_pk, int) or verdict_pk < 1:
            raise ValueError(f"verdict_pk must be a positive integer, got {verdict_pk!r}")
        if (
            not isinstance(reason, str)
            or not reason
            or len(reason) > _MAX_REASON_CHARS
            or not reason.replace("_", "").isalnum()
            or reason != reason.lower()
        ):
            raise ValueError(
                f"reason must be a lowercase identifier of at most {_MAX_REASON_CHARS} "
                f"characters, e.g. one of {', '.join(STANDARD_REASONS)}; got {reason!r}"
            )
        if detail is not None and not isinstance(detail, str):
            raise ValueError(f"detail must be a string or None, got {type(detail).__name__}")
        moment = _utc(at, "at")
        clock_now = utcnow() if now is None else _utc(now, "now")
        if moment > max(utcnow(), clock_now) + self.future_tolerance:
            raise ValueError(
                f"at is {moment.isoformat()}, after now ({clock_now.isoformat()}) beyond the "
                f"{self.future_tolerance} allowed for clock skew: a revocation records an event "
                "that has happened; fix the timestamp (a naive one is read as UTC)"
            )
        self._ready()
        with session(self.engine) as db:
            from ledger.bookings import book_revocation_entry, lock_clock

            clock = lock_clock(db.connection(), self.tenant, clock_now)
            existing = self._existing(db, outcome_id, verdict_pk, reason)
            if existing is not None:
                return Booking(_revocation(existing), created=False)
            verdict = db.exec(
                select(VerdictRow.outcome_id).where(
                    VerdictRow.tenant == self.tenant, VerdictRow.pk == verdict_pk
                )
            ).one_or_none()
            if verdict != outcome_id:
                whose = "no such verdict" if verdict is None else f"it is of outcome {verdict!r}"
                raise UnknownVerdictError(
                    f"tenant {self.tenant!r} has no verdict {verdict_pk} for outcome "
                    f"{outcome_id!r} ({whose}); pass the verdict_pk that record_result returned"
                )
            booked_at, _ = clock.target(moment)
            period = self._open_period_from(db, month_period(booked_at)[0])
            if period.start > booked_at:  # closed meanwhile (cannot happen under the lock)
                booked_at = period.start
            values: dict[str, Any] = {
                "tenant": self.tenant,
                "outcome_id": outcome_id,
                "verdict_pk": verdict_pk,
                "reason": reason,
                "detail": detail,
                "booked_period_start": period.start,
                "occurred_at": moment,
                "created_at": clock_now,
                "booked_at": booked_at,
            }
            created = _insert_ignore(
                db, RevocationRow, values, ["tenant", "outcome_id", "verdict_pk", "reason"]
            )
            row = self._existing(db, outcome_id, verdict_pk, reason)
            assert row is not None and row.pk is not None
            if created:
                book_revocation_entry(
                    db.connection(),
                    self.tenant,
                    clock,
                    outcome_id=outcome_id,
                    verdict_pk=verdict_pk,
                    reason=reason,
                    at=booked_at,
                    revocation_pk=row.pk,
                )
            return Booking(_revocation(row), created=created)

    def _existing(
        self, db: Session, outcome_id: str, verdict_pk: int, reason: str
    ) -> RevocationRow | None:
        return db.exec(
            select(RevocationRow).where(
                RevocationRow.tenant == self.tenant,
                RevocationRow.outcome_id == outcome_id,
                RevocationRow.verdict_pk == verdict_pk,
                RevocationRow.reason == reason,
            )
        ).one_or_none()

    def _open_period_from(self, db: Session, start: datetime) -> BillingPeriodRow:
        """The earliest not-closed period at or after ``start``, locked (created if missing).

        Terminates: a period can only be closed once it has ended, so at the latest the
        period after the current month is open.
        """
        while True:
            row = self._ensure(db, start, lock=True)
            if row.status == "open":
                return row
            start = row.end

    def revocations(
        self,
        *,
        outcome_id: str | None = None,
        reason: str | None = None,
        period_start: datetime | None = None,
    ) -> list[Revocation]:
        """This tenant's revocations in booking order, optionally filtered.

        ``period_start`` selects the revocations booked in the period starting then.
        """
        conditions: list[Any] = [RevocationRow.tenant == self.tenant]
        if outcome_id is not None:
            conditions.append(RevocationRow.outcome_id == outcome_id)
        if reason is not None:
            conditions.append(RevocationRow.reason == reason)
        if period_start is not None:
            start = self._check_start(period_start)
            conditions.append(RevocationRow.booked_period_start == start)
        with session(self.engine, readonly=True) as db:
            rows = db.exec(
                select(RevocationRow).where(*conditions).order_by(col(RevocationRow.pk))
            ).all()
            return [_revocation(row) for row in rows]


__all__ = [
    "REASON_CAME_BACK",
    "REASON_CSAT_LOW",
    "REASON_HUMAN_OVERTURN",
    "REASON_REOPENED",
    "STANDARD_REASONS",
    "BillingPeriod",
    "Booking",
    "PeriodNotEndedError",
    "PeriodStatus",
    "Periods",
    "Revocation",
    "UnknownVerdictError",
    "month_period",
]
