"""The tenant's own view (``GET /v1/tenant``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class TenantPublic(BaseModel):
    name: str = Field(description="The tenant this API key belongs to.")
    daily_budget_usd: float | None = Field(
        description="Judge spend per UTC day after which new verification work waits; "
        "null = no cap."
    )
    requests_per_minute: int = Field(description="API requests per minute before 429.")
    spent_today_usd: float = Field(
        description="Judge spend since 00:00 UTC today (every call, retries included)."
    )
    budget_remaining_usd: float | None = Field(
        description="What is left of today's budget (0 once reached); null = no cap."
    )
    budget_reached: bool = Field(
        description="True when today's spend has reached the budget: jobs wait until the reset."
    )
    budget_resets_at: datetime = Field(description="When today's spend starts again from 0 (UTC).")
    message: str = Field(description="The budget state in one sentence.")
