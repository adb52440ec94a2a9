"""`judge periods` and `judge revocations`: billing periods and the revocations booked into them.

``judge periods list`` shows a tenant's periods (UTC months) and ``judge periods close YYYY-MM``
freezes one that has ended (nothing is booked into it again). ``judge revocations scan`` re-checks
every outcome's latest revision (and labels recorded later) against its latest verified verdict
and books what is due (:func:`ledger.revocation.scan_revocations`); ``judge revocations list``
shows what was booked, optionally in one period.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.cli._common import fail
from app.cli._sources import TenantOpt, open_ledger

if TYPE_CHECKING:
    from ledger.periods import BillingPeriod, Booking, Revocation

periods_app = typer.Typer(
    name="periods", help="Billing periods (UTC months): list them, close one.", no_args_is_help=True
)
revocations_app = typer.Typer(
    name="revocations",
    help="Revocations of verified verdicts (reopen, CSAT <= 3, human overturn).",
    no_args_is_help=True,
)

DbOpt = Annotated[
    str, typer.Option("--db", help="The ledger, e.g. sqlite:///outcome-judge.db or postgresql://…")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
_TABLES = {"tenants", "verdicts", "billing_periods", "revocations"}


def register(app: typer.Typer) -> None:
    app.add_typer(periods_app, name="periods")
    app.add_typer(revocations_app, name="revocations")


def parse_month(value: str, option: str) -> datetime:
    """``YYYY-MM`` as the first instant of that UTC month; exits 2 when malformed."""
    try:
        start = datetime.strptime(value, "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        fail(f"{option}: {value!r} is not a month; use YYYY-MM, e.g. 2026-03")
    return start


def _month(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m")


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return (moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment).isoformat()


def _period_json(period: BillingPeriod) -> dict[str, Any]:
    return {
        "period": _month(period.start),
        "start": _iso(period.start),
        "end": _iso(period.end),
        "status": period.status,
        "closed_at": _iso(period.closed_at),
    }


def _revocation_json(item: Revocation) -> dict[str, Any]:
    return {
        "outcome_id": item.outcome_id,
        "verdict_pk": item.verdict_pk,
        "reason": item.reason,
        "detail": item.detail,
        "occurred_at": _iso(item.occurred_at),
        "period": _month(item.booked_period_start),
        "created_at": _iso(item.created_at),
    }


def _revocation_line(item: Revocation) -> str:
    return (
        f"{_month(item.booked_period_start)}  {item.outcome_id}  {item.reason}  "
        f"(verdict {item.verdict_pk}, at {_iso(item.occurred_at)}): {item.detail or ''}"
    )


@periods_app.command("list")
def list_periods(db: DbOpt, tenant: TenantOpt = None, as_json: JsonOpt = False) -> None:
    """The tenant's billing periods, oldest first, with their status."""
    from ledger.periods import Periods

    engine, chosen, _ = open_ledger(db, tenant, tables=_TABLES)
    try:
        periods = Periods(engine, tenant=chosen).periods()
    finally:
        engine.dispose()
    if as_json:
        data = {"tenant": chosen, "periods": [_period_json(p) for p in periods]}
        typer.echo(json.dumps(data, indent=2))
        return
    if not periods:
        typer.echo(f"tenant {chosen}: no billing periods yet")
    for period in periods:
        closed = f" (closed {_iso(period.closed_at)})" if period.closed_at else ""
        typer.echo(f"{_month(period.start)}  {period.status}{closed}")


@periods_app.command("close")
def close_period(
    month: Annotated[str, typer.Argument(help="The period to close, YYYY-MM (UTC month).")],
    db: DbOpt,
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Close an ended period: nothing is booked into it again (later bookings go to the next)."""
    from ledger.periods import PeriodNotEndedError, Periods

    start = parse_month(month, "MONTH")
    engine, chosen, _ = open_ledger(db, tenant, tables=_TABLES)
    try:
        period = Periods(engine, tenant=chosen).close_period(start)
    except PeriodNotEndedError as exc:
        fail(str(exc))
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps({"tenant": chosen, **_period_json(period)}, indent=2))
        return
    typer.echo(f"tenant {chosen}: period {_month(period.start)} is {period.status}")


@revocations_app.command("scan")
def scan(
    db: DbOpt,
    tenant: TenantOpt = None,
    window_hours: Annotated[
        float,
        typer.Option("--window-hours", help="A reopen revokes within this long after close."),
    ] = 72.0,
    as_json: JsonOpt = False,
) -> None:
    """Book the revocations due (reopen, CSAT <= 3, human overturn); idempotent."""
    from ledger.revocation import scan_revocations

    if not window_hours > 0:
        fail(f"--window-hours must be > 0, got {window_hours:g}")
    engine, chosen, _ = open_ledger(db, tenant, tables=_TABLES)
    try:
        bookings: list[Booking] = scan_revocations(engine, tenant=chosen, window_hours=window_hours)
    except ValueError as exc:
        fail(str(exc))
    finally:
        engine.dispose()
    booked = [b.revocation for b in bookings if b.created]
    already = len(bookings) - len(booked)
    if as_json:
        data = {
            "tenant": chosen,
            "booked": [_revocation_json(r) for r in booked],
            "already_booked": already,
        }
        typer.echo(json.dumps(data, indent=2))
        return
    typer.echo(f"tenant {chosen}: {len(booked)} revocation(s) booked, {already} already booked")
    for item in booked:
        typer.echo(_revocation_line(item))


@revocations_app.command("list")
def list_revocations(
    db: DbOpt,
    tenant: TenantOpt = None,
    period: Annotated[
        str | None, typer.Option("--period", help="Only those booked in this month, YYYY-MM.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Booked revocations in booking order, optionally of one period."""
    from ledger.periods import Periods

    start = None if period is None else parse_month(period, "--period")
    engine, chosen, _ = open_ledger(db, tenant, tables=_TABLES)
    try:
        items = Periods(engine, tenant=chosen).revocations(period_start=start)
    finally:
        engine.dispose()
    if as_json:
        data = {"tenant": chosen, "revocations": [_revocation_json(r) for r in items]}
        typer.echo(json.dumps(data, indent=2))
        return
    if not items:
        typer.echo(f"tenant {chosen}: no revocations" + (f" in {period}" if period else ""))
    for item in items:
        typer.echo(_revocation_line(item))
