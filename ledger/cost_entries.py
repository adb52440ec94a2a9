"""Cost entries: human review time booked against outcomes (table ``cost_entries``).

Minutes are recorded here; :func:`ledger.cost_report.cost_report` prices them at a labour rate
(``judge cost report --labor-rate``) and adds them to the numerator of cost per verified outcome.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from judge.models import as_utc
from ledger.integrity import DEFAULT_FUTURE_TOLERANCE, FutureTimestampError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = ["KIND_HUMAN_REVIEW", "UnknownOutcomeError", "record_review", "review_minutes"]

KIND_HUMAN_REVIEW = "human_review"
_MAX_MINUTES = Decimal("99999999")  # NUMERIC(12, 4): eight digits before the point


def _minutes_read(value: object) -> Decimal:
    # SQLite hands NUMERIC back through a double: round to the column's 4 places again.
    return Decimal(str(value)).quantize(Decimal("0.0001"))


class UnknownOutcomeError(ValueError):
    """The tenant or the outcome a cost entry names is not in the ledger."""


def check_minutes(minutes: object) -> Decimal:
    """Minutes as a Decimal rounded to 4 places; a ValueError naming ``minutes`` otherwise.

    >>> check_minutes(12.5)
    Decimal('12.5000')
    >>> check_minutes(-1)
    Traceback (most recent call last):
    ...
    ValueError: minutes must be a finite number >= 0, got -1
    """
    bad = ValueError(f"minutes must be a finite number >= 0, got {minutes!r}")
    if isinstance(minutes, bool) or not isinstance(minutes, int | float | Decimal | str):
        raise bad
    try:
        value = Decimal(repr(minutes) if isinstance(minutes, float) else minutes)
    except (InvalidOperation, ValueError):
        raise bad from None
    if not value.is_finite() or value < 0:
        raise bad
    if value > _MAX_MINUTES:
        raise ValueError(f"minutes must be at most {_MAX_MINUTES}, got {minutes!r}")
    return value.quantize(Decimal("0.0001"))


def record_review(
    engine: Engine,
    *,
    tenant: str,
    outcome_id: str,
    minutes: float | int | Decimal,
    by: str | None = None,
    note: str | None = None,
    at: datetime,
    now: datetime | None = None,
    tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE,
) -> int:
    """Record ``minutes`` of human review of one outcome; returns the new row's ``pk``.

    Everything is checked before anything is written, and the row is written in one
    transaction: the tenant and the outcome must already be in the ledger.

    Parameters
    ----------
    engine
        A migrated ledger (:func:`ledger.schema.migrate`).
    tenant, outcome_id
        The reviewed outcome (any revision of it).
    minutes
        Review time in minutes: a finite number >= 0 (kept to 4 decimal places).
    by, note
        Who reviewed it (at most 200 characters) and a free-text note.
    at
        When the review happened (naive means UTC); at most ``tolerance`` after ``now``.
    now
        The current time (default: the clock).
    tolerance
        Allowed clock skew for ``at``.

    Raises
    ------
    ValueError
        A bad ``minutes``, ``by``, ``tenant`` or ``outcome_id``, naming the field.
    FutureTimestampError
        ``at`` lies more than ``tolerance`` after ``now``.
    UnknownOutcomeError
        The tenant or the outcome is not in the ledger.
    """
    import sqlalchemy as sa

    from ledger.db import session
    from ledger.tables import CostEntryRow, OutcomeRow, TenantRow

    value = check_minutes(minutes)
    if not isinstance(tenant, str) or not tenant.strip():
        raise ValueError("tenant must be a non-empty string, e.g. tenant='acme'")
    if not isinstance(outcome_id, str) or not outcome_id.strip() or len(outcome_id) > 200:
        raise ValueError(f"outcome_id must be a non-empty string of at most 200 characters, got "
                         f"{outcome_id!r}")  # fmt: skip
    if by is not None and (not isinstance(by, str) or len(by) > 200):
        raise ValueError(f"by must be a string of at most 200 characters, got {by!r}")
    if note is not None and not isinstance(note, str):
        raise ValueError(f"note must be a string, got {type(note).__name__}")
    if not isinstance(at, datetime):
        raise ValueError(f"at must be a datetime, got {at!r}")
    clock = as_utc(datetime.now(UTC) if now is None else now)
    when = as_utc(at)
    if when > clock + tolerance:
        raise FutureTimestampError(
            f"at is {when.isoformat()}, {when - clock} after now ({clock.isoformat()}), beyond the "
            f"{tolerance} allowed for clock skew; fix the time (or its time zone: a time without "
            "one is read as UTC)"
        )
    with session(engine) as db:
        conn = db.connection()
        known = conn.execute(
            sa.select(sa.literal(1)).where(TenantRow.__table__.c.name == tenant)  # type: ignore[attr-defined]
        ).first()
        if known is None:
            raise UnknownOutcomeError(
                f"tenant {tenant!r} is not in the ledger; check the tenant (judge verify --db "
                "records tenants)"
            )
        outcomes = OutcomeRow.__table__.c  # type: ignore[attr-defined]
        found = conn.execute(
            sa.select(sa.literal(1))
            .where(outcomes.tenant == tenant, outcomes.outcome_id == outcome_id)
            .limit(1)
        ).first()
        if found is None:
            raise UnknownOutcomeError(
                f"outcome_id {outcome_id!r} is not in the ledger for tenant {tenant!r}; check the "
                "id (ingest the outcome first)"
            )
        row = CostEntryRow(
            tenant=tenant,
            outcome_id=outcome_id,
            kind=KIND_HUMAN_REVIEW,
            minutes=value,
            by=by,
            note=note,
            at=when,
        )
        db.add(row)
        db.flush()
        assert row.pk is not None
        return row.pk


def review_minutes(
    engine: Engine,
    *,
    tenant: str,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Decimal]:
    """Total human review minutes per outcome id, for reviews with ``at`` in ``[since, until)``.

    Outcomes without a review are absent (not 0).
    """
    import sqlalchemy as sa

    from ledger.db import session
    from ledger.tables import CostEntryRow

    if since is not None and until is not None and as_utc(since) >= as_utc(until):
        raise ValueError(f"since ({since.isoformat()}) must be before until ({until.isoformat()})")
    c = CostEntryRow.__table__.c  # type: ignore[attr-defined]
    query = sa.select(c.outcome_id, c.minutes).where(
        c.tenant == tenant, c.kind == KIND_HUMAN_REVIEW, c.minutes.is_not(None)
    )
    if since is not None:
        query = query.where(c.at >= since)
    if until is not None:
        query = query.where(c.at < until)
    totals: dict[str, Decimal] = {}
    with session(engine, readonly=True) as db:
        for oid, minutes in db.connection().execute(query).all():
            totals[oid] = totals.get(oid, Decimal(0)) + _minutes_read(minutes)
    return totals
