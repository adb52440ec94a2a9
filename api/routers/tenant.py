"""The calling tenant: who the key belongs to and its limits."""

from __future__ import annotations

from decimal import Decimal

from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import SettingsDep, TenantDep

router = APIRouter(prefix="/v1", tags=["tenant"])


class TenantPublic(BaseModel):
    name: str
    daily_budget_usd: Decimal | None
    requests_per_minute: int


@router.get("/tenant", response_model=TenantPublic)
async def get_tenant(tenant: TenantDep, settings: SettingsDep) -> TenantPublic:
    """The tenant of this key and its limits."""
    return TenantPublic(
        name=tenant.name,
        daily_budget_usd=tenant.daily_budget_usd,
        requests_per_minute=tenant.requests_per_minute or settings.requests_per_minute,
    )
