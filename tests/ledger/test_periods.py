"""Billing periods and revocations (ledger.periods), on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Engine

from ledger.db import make_engine
from ledger.periods import (
    PeriodNotEndedError,
    Periods,
    UnknownVerdictError,
    month_period,
)
from ledger.schema import alembic_config, current_tables, migrate
from ledger.store import Ledger
from ledger.tables import BillingPeriodRow, RevocationRow, utcnow
from tests.ledger.conftest import ticket, verdict_for

#: Also on a PostgreSQL ledger partitioned by month (tests/ledger/conftest.py).
PARTITIONED_TOO = ("engine",)

MARCH = datetime(2026, 3, 1, tzinfo=UTC)
APRIL = datetime(2026, 4, 1, tzinfo=UTC)
MAY = datetime(2026, 5, 1, tzinfo=UTC)
JUNE = datetime(2026, 6, 1, tzinfo=UTC)
TICK = timedelta(microseconds=1)


def _verdict_pk(engine: Engine, outcome_id: str = "T-1001", *, tenant: str = "acme") -> int:
    outcome = ticket(outcome_id)
    return Ledger(engine, tenant=tenant).record_result(outcome, verdict_for(outcome)).verdict_pk


def _snapshot(engine: Engine, start: datetime) -> tuple[list[tuple[object, ...]], ...]:
    """Every column of a period's row and of the revocations booked in it."""
    periods = BillingPeriodRow.__table__  # type: ignore[attr-defined]
    revocations = RevocationRow.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        period_rows = conn.execute(sa.select(periods).where(periods.c.start == start)).all()
        booked = conn.execute(
            sa.select(revocations)
            .where(revocations.c.booked_period_start == start)
            .order_by(revocations.c.pk)
        ).all()
    return [tuple(r) for r in period_rows], [tuple(r) for r in booked]


# -- month boundaries (pure) -------------------------------------------------------------------


def test_month_period_is_half_open_at_midnight_utc_of_the_first() -> None:
    assert month_period(APRIL) == (APRIL, MAY)  # midnight of the 1st starts the new month
    assert month_period(APRIL - TICK) == (MARCH, APRIL)  # one microsecond earlier: March
    assert month_period(datetime(2026, 4, 1)) == (APRIL, MAY)  # naive means UTC
    # 01:00 on 1 April in UTC+2 is 23:00 on 31 March in UTC: March.
    plus_two = timezone(timedelta(hours=2))
    assert month_period(datetime(2026, 4, 1, 1, tzinfo=plus_two)) == (MARCH, APRIL)
    dec = datetime(2026, 12, 1, tzinfo=UTC)
    assert month_period(datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)) == (
        dec,
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    with pytest.raises(ValueError, match="at must be a datetime"):
        month_period("2026-04-01")  # type: ignore[arg-type]


# -- periods -----------------------------------------------------------------------------------


def test_open_period_for_creates_the_month_once(engine: Engine) -> None:
    periods = Periods(engine, tenant="acme")
    april = periods.open_period_for(APRIL)  # exactly midnight of the 1st: April, not March
    assert (april.start, april.end, april.status, april.closed_at) == (APRIL, MAY, "open", None)
    assert periods.open_period_for(MAY - TICK) == april
    march = periods.open_period_for(APRIL - TICK)
    assert (march.start, march.end) == (MARCH, APRIL)
    assert [p.start for p in periods.periods()] == [MARCH, APRIL]
    assert Periods(engine, tenant="other").periods() == []  # tenants are separate


def test_close_period_refuses_a_period_that_has_not_ended(engine: Engine) -> None:
    periods = Periods(engine, tenant="acme")
    periods.open_period_for(MARCH)
    with pytest.raises(PeriodNotEndedError, match="ends after now"):
        periods.close_period(MARCH, now=APRIL - TICK)
    current, _ = month_period(utcnow())
    with pytest.raises(PeriodNotEndedError, match="close it on or after"):
        periods.close_period(current)  # the current month, by the real clock
    assert [(p.start, p.status) for p in periods.periods()] == [(MARCH, "open")]
    closed = periods.close_period(MARCH, now=APRIL)  # exactly at its end: allowed (half-open)
    assert (closed.status, closed.closed_at) == ("closed", APRIL)


def test_closing_a_closed_period_is_a_no_op(engine: Engine) -> None:
    periods = Periods(engine, tenant="acme")
    first = periods.close_period(MARCH, now=APRIL + timedelta(days=2))  # never opened: recorded
    again = periods.close_period(MARCH, now=APRIL + timedelta(days=9))
    assert first == again and again.closed_at == APRIL + timedelta(days=2)
    assert periods.open_period_for(MARCH).status == "closed"  # stays closed


def test_close_period_wants_a_month_start(engine: Engine) -> None:
    with pytest.raises(ValueError, match="did you mean 2026-03-01T00:00:00"):
        Periods(engine, tenant="acme").close_period(MARCH + timedelta(days=3))


# -- revocations -------------------------------------------------------------------------------


def test_booking_into_the_open_period_of_the_event(engine: Engine) -> None:
    verdict_pk = _verdict_pk(engine)
    periods = Periods(engine, tenant="acme")
    booking = periods.book_revocation(
        "T-1001", verdict_pk=verdict_pk, reason="csat_low", detail="CSAT 2", at=APRIL
    )
    rev = booking.revocation
    assert booking.created
    assert (rev.outcome_id, rev.verdict_pk, rev.reason, rev.detail) == (
        "T-1001",
        verdict_pk,
        "csat_low",
        "CSAT 2",
    )
    assert (rev.booked_period_start, rev.occurred_at) == (APRIL, APRIL)  # midnight: April
    assert [(p.start, p.status) for p in periods.periods()] == [(APRIL, "open")]
    assert periods.revocations() == [rev]
    assert periods.revocations(period_start=APRIL) == [rev]
    assert periods.revocations(period_start=MARCH) == []
    assert periods.revocations(outcome_id="T-1001", reason="reopened") == []


def test_a_closed_period_is_never_written_to(engine: Engine) -> None:
    verdict_pk = _verdict_pk(engine)
    periods = Periods(engine, tenant="acme")
    early = periods.book_revocation(
        "T-1001", verdict_pk=verdict_pk, reason="reopened", at=MARCH + timedelta(days=3)
    ).revocation
    assert early.booked_period_start == MARCH
    periods.close_period(MARCH, now=APRIL + timedelta(days=1))
    before = _snapshot(engine, MARCH)
    assert len(before[0]) == 1 and len(before[1]) == 1

    late_event = APRIL - TICK  # still in March, which is closed: booked in April
    late = periods.book_revocation(
        "T-1001", verdict_pk=verdict_pk, reason="human_overturn", detail="QA", at=late_event
    ).revocation
    assert (late.booked_period_start, late.occurred_at) == (APRIL, late_event)
    assert _snapshot(engine, MARCH) == before
    april = periods.period(APRIL)
    assert april is not None and april.status == "open"

    # April closed too: the earliest open period at or after the event is May (created).
    periods.close_period(APRIL, now=MAY)
    april_before = _snapshot(engine, APRIL)
    later = periods.book_revocation(
        "T-1001", verdict_pk=verdict_pk, reason="csat_low", at=MARCH + timedelta(days=20)
    ).revocation
    assert later.booked_period_start == MAY
    assert _snapshot(engine, MARCH) == before
    assert _snapshot(engine, APRIL) == april_before
    by_period = {p.start: p.status for p in periods.periods()}
    assert by_period == {MARCH: "closed", APRIL: "closed", MAY: "open"}


def test_booking_skips_a_closed_period_to_an_existing_open_one(engine: Engine) -> None:
    verdict_pk = _verdict_pk(engine)
    periods = Periods(engine, tenant="acme")
    periods.open_period_for(MAY)
    periods.close_period(APRIL, now=JUNE)  # April never opened, closed directly
    rev = periods.book_revocation(
        "T-1001", verdict_pk=verdict_pk, reason="reopened", at=APRIL + timedelta(days=1)
    ).revocation
    assert rev.booked_period_start == MAY
    assert periods.revocations(period_start=APRIL) == []


def test_booking_is_idempotent(engine: Engine) -> None:
    verdict_pk = _verdict_pk(engine)
    periods = Periods(engine, tenant="acme")
    first = periods.book_revocation(
        "T-1001", verdict_pk=verdict_pk, reason="reopened", detail="reopened by customer", at=MARCH
    )
    periods.close_period(MARCH, now=APRIL)
    again = periods.book_revocation(
        "T-1001", verdict_pk=verdict_pk, reason="reopened", detail="sent twice", at=APRIL
    )
    assert first.created and not again.created
    assert again.revocation == first.revocation  # the first booking stands, unchanged
    assert periods.revocations() == [first.revocation]
    assert periods.period(APRIL) is None  # the repeat created no period either
    other = periods.book_revocation("T-1001", verdict_pk=verdict_pk, reason="csat_low", at=MARCH)
    assert other.created and other.revocation.booked_period_start == APRIL
    assert len(periods.revocations(outcome_id="T-1001")) == 2


def test_bad_bookings_write_nothing(engine: Engine) -> None:
    verdict_pk = _verdict_pk(engine)
    other_tenant_pk = _verdict_pk(engine, "T-2", tenant="globex")
    periods = Periods(engine, tenant="acme")
    with pytest.raises(UnknownVerdictError, match="no such verdict"):
        periods.book_revocation("T-1001", verdict_pk=other_tenant_pk, reason="reopened", at=MARCH)
    with pytest.raises(UnknownVerdictError, match="of outcome 'T-1001'"):
        periods.book_revocation("T-9", verdict_pk=verdict_pk, reason="reopened", at=MARCH)
    with pytest.raises(ValueError, match="clock skew"):
        periods.book_revocation(
            "T-1001", verdict_pk=verdict_pk, reason="reopened", at=utcnow() + timedelta(hours=1)
        )
    with pytest.raises(ValueError, match="reason must be a lowercase identifier"):
        periods.book_revocation("T-1001", verdict_pk=verdict_pk, reason="Re opened", at=MARCH)
    with pytest.raises(ValueError, match="verdict_pk must be a positive integer"):
        periods.book_revocation("T-1001", verdict_pk=0, reason="reopened", at=MARCH)
    assert periods.revocations() == [] and periods.periods() == []


# -- migrations --------------------------------------------------------------------------------


def test_migration_0002_downgrades_and_upgrades_cleanly(ledger_url: str) -> None:
    eng = make_engine(ledger_url)
    config = alembic_config()
    try:
        migrate(eng)
        assert {"billing_periods", "revocations"} <= current_tables(eng)
        outcome = ticket("T-7")
        Ledger(eng, tenant="acme").record_result(outcome, verdict_for(outcome))
        with eng.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0001")
        tables = current_tables(eng)
        assert "billing_periods" not in tables and "revocations" not in tables
        assert Ledger(eng, tenant="acme").counts()["verdicts"] == 1  # 0001's data untouched
        migrate(eng)
        pk = Ledger(eng, tenant="acme").record_result(outcome, verdict_for(outcome)).verdict_pk
        booked = Periods(eng, tenant="acme").book_revocation(
            "T-7", verdict_pk=pk, reason="reopened", at=MARCH
        )
        assert booked.created
    finally:
        eng.dispose()


def test_concurrent_bookings_of_one_revocation_store_it_once(engine: Engine) -> None:
    verdict_pk = _verdict_pk(engine)
    barrier = threading.Barrier(4)
    results: list[bool] = []
    errors: list[BaseException] = []

    def book() -> None:
        try:
            barrier.wait(timeout=10)
            booking = Periods(engine, tenant="acme").book_revocation(
                "T-1001", verdict_pk=verdict_pk, reason="reopened", at=MARCH
            )
            results.append(booking.created)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=book, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert sorted(results) == [False, False, False, True]
    assert len(Periods(engine, tenant="acme").revocations()) == 1
