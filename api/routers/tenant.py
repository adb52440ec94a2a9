"""The calling tenant: who the key belongs to, its limits, today's judge spend against its budget.

When a tenant's verification jobs wait, this is where the API says why: ``budget_reached`` with
the spend, the cap and when it resets (00:00 UTC).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import Decimal

from fastapi import APIRouter

from api.deps import EngineDep, SettingsDep, TenantDep
from api.schemas.tenant import (
    TenantPublic,
)
from ledger.tables import utcnow

router = APIRouter(prefix="/v1", tags=["tenant"])


def _message(budget: Decimal | None, spent: Decimal, reached: bool, resets_at: datetime) -> str:
    if budget is None:
        return f"no daily judge budget; {spent.normalize():f} USD spent today"
    if reached:
        return (
            f"daily judge budget reached: {spent.normalize():f} of {budget.normalize():f} USD "
            f"spent today; verification jobs wait until {resets_at.isoformat()} (raise it with "
            "`judge tenants set-limits NAME --daily-budget USD`)"
        )
    return f"{spent.normalize():f} of {budget.normalize():f} USD daily judge budget spent today"


@router.get("/tenant", response_model=TenantPublic)
async def get_tenant(tenant: TenantDep, settings: SettingsDep, engine: EngineDep) -> TenantPublic:
    """The tenant of this key: its limits and today's judge spend against its daily budget."""
    from ledger.spend import spent_today

    spent, resets_at = await asyncio.to_thread(spent_today, engine, tenant.name, now=utcnow())
    budget = tenant.daily_budget_usd
    reached = budget is not None and spent >= budget
    return TenantPublic(
        name=tenant.name,
        # Money leaves the API as JSON numbers, like every other USD figure it answers.
        daily_budget_usd=None if budget is None else float(budget),
        requests_per_minute=tenant.requests_per_minute or settings.requests_per_minute,
        spent_today_usd=float(spent),
        budget_remaining_usd=None if budget is None else float(max(Decimal(0), budget - spent)),
        budget_reached=reached,
        budget_resets_at=resets_at,
        message=_message(budget, spent, reached, resets_at),
    )
