"""Judge spend per tenant over a time span (what the daily budget cap compares against)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledger.db import session
from ledger.tables import JudgeCallRow, to_money


def day_start(moment: datetime) -> datetime:
    """00:00 UTC of the day holding ``moment``."""
    moment = moment.astimezone(UTC)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def judge_spend(engine: Engine, tenant: str, *, since: datetime, until: datetime) -> Decimal:
    """USD of every judge call (retries and failed attempts included) in ``[since, until)``."""
    calls = JudgeCallRow.__table__.c  # type: ignore[attr-defined]
    query = sa.select(sa.func.coalesce(sa.func.sum(calls.cost_usd), 0)).where(
        calls.tenant == tenant, calls.at >= since, calls.at < until
    )
    with session(engine, readonly=True) as db:
        total = db.connection().execute(query).scalar_one()
    return to_money(total)


def spent_today(engine: Engine, tenant: str, *, now: datetime) -> tuple[Decimal, datetime]:
    """Judge spend of ``tenant`` since 00:00 UTC today, and when the day ends (the cap resets)."""
    start = day_start(now)
    end = start + timedelta(days=1)
    return judge_spend(engine, tenant, since=start, until=end), end
