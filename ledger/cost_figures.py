"""The cost report as typed records: what :func:`ledger.cost_report.cost_report` returns.

Field names are the JSON keys of ``judge cost report --json`` (a contract); :meth:`CostReport.
to_dict` gives exactly that JSON object, and the HTTP service maps these fields to its own
public schema (:mod:`api.schemas.meters`) instead of re-reading a dictionary.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CallsOfPurpose", "CostFigures", "CostReport", "CostRow"]


class CostFigures(BaseModel):
    """Numerator, denominator and parts of one group (or a total)."""

    model_config = ConfigDict(frozen=True)

    outcomes: int
    verified: int
    agent_cost_usd: float
    agent_cost_missing: int
    judge_cost_usd: float
    judge_calls: int
    human_review_minutes: float
    human_review_usd: float | None
    human_review_reason: str | None
    numerator_usd: float
    denominator: int
    cost_per_verified_usd: float | None
    reason: str | None
    revoked: int
    verified_net: int
    cost_per_verified_net_usd: float | None
    net_reason: str | None


class CostRow(CostFigures):
    """One group of the report: its dimension values and status (``period_*`` with ``period``)."""

    group: dict[str, str | None]
    status: str
    period_start: str | None = None
    period_end: str | None = None


class CallsOfPurpose(BaseModel):
    """Judge calls of one purpose in the report's range (``verify``, ``bias``, ``canary``)."""

    model_config = ConfigDict(frozen=True)

    calls: int
    cost_usd: float


class CostReport(BaseModel):
    """Cost per verified outcome per group, with the totals and what a reader must know."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    tenant: str
    from_: str | None = Field(alias="from")
    to: str | None
    group_by: list[str]
    period: str | None
    now: str
    window_hours: float | None
    window_hours_by_rubric: dict[str, float]
    window_note: str | None
    grace_hours: float
    groups: list[CostRow]
    provisional: CostFigures
    final: CostFigures
    total: CostFigures
    unattributed_judge_cost_usd: float
    unattributed_judge_calls: int
    judge_calls_by_purpose: dict[str, CallsOfPurpose]
    labor_rate_usd_per_hour: float | None
    human_review_minutes: float
    human_review_usd: float | None
    human_review_note: str
    unattributed_human_review_minutes: float
    revoked_outcomes: int
    meter_adjustments: dict[str, int]
    unknown_calls: int
    unknown_calls_usd: float
    pending_calls: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``judge cost report --json`` (``period_*`` only where grouped)."""
        data = self.model_dump(by_alias=True)
        if "period" not in self.group_by:
            for row in data["groups"]:
                del row["period_start"], row["period_end"]
        return data
