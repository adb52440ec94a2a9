"""Meter and cost models (``/v1/meters/...``, ``/v1/cost``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from ledger import cost_figures as ledger_costs

Status = Literal["provisional", "final"]
GroupValues = dict[str, str | None]


class MeterRow(BaseModel):
    window_start: datetime = Field(description="Start of the window (UTC), inclusive.")
    window_end: datetime = Field(description="End of the window (UTC), exclusive.")
    group: GroupValues = Field(description="The value of each `group_by` dimension.")
    value: int = Field(
        description="Net verified outcomes booked in the window: +1 per outcome counted here, "
        "-1 per count taken back here (see `adjustments`); can be 0 or negative."
    )
    adjustments: dict[str, int] = Field(
        default_factory=dict,
        description="The signed counts in `value` that are not on-time verifications, by "
        "reason: `late_arrival` and `moved` (+1: the outcome's own window was already final or "
        "closed), `withdrawn` (-1: a newer verdict took back a count in a final window), and "
        "revocations (`reopened`, `csat_low`, `human_overturn`, `came_back`: -1).",
    )
    status: Status = Field(
        description="`final` when the billing period is closed, or the window ended 96 h ago "
        "and every outcome in it is final; a final row never changes."
    )
    final_at: datetime = Field(description="When this row is (or becomes) final.")


class MeterPublic(BaseModel):
    from_: datetime = Field(alias="from", serialization_alias="from")
    to: datetime
    window: Literal["day", "month"]
    group_by: list[str]
    now: datetime = Field(description="The moment the statuses were decided at.")
    rows: list[MeterRow] = Field(
        description="Windows and groups without a verified outcome have no row (zero)."
    )


class CostFigures(BaseModel):
    outcomes: int = Field(description="Outcomes with a verdict recorded in the range.")
    verified: int
    cost_usd: float = Field(description="The numerator: agent + judge + human review, USD.")
    value: float | None = Field(description="cost_usd / verified; None when verified is 0.")
    numerator_usd: float
    denominator: int
    agent_cost_usd: float
    judge_cost_usd: float
    human_review_usd: float | None
    reason: str | None = Field(description="Why `value` is None.")

    @staticmethod
    def fields_of(part: ledger_costs.CostFigures) -> dict[str, Any]:
        """This schema's fields from the ledger's figures (``cost_usd`` is the numerator,
        ``value`` the cost per verified outcome)."""
        return {
            "outcomes": part.outcomes,
            "verified": part.verified,
            "cost_usd": part.numerator_usd,
            "value": part.cost_per_verified_usd,
            "numerator_usd": part.numerator_usd,
            "denominator": part.denominator,
            "agent_cost_usd": part.agent_cost_usd,
            "judge_cost_usd": part.judge_cost_usd,
            "human_review_usd": part.human_review_usd,
            "reason": part.reason,
        }


class CostGroup(CostFigures):
    group: GroupValues
    status: Status


class CostPublic(CostFigures):
    from_: datetime | None = Field(alias="from", serialization_alias="from")
    to: datetime | None
    group_by: list[str]
    now: datetime
    provisional: CostFigures
    final: CostFigures
    groups: list[CostGroup]
    labor_rate_usd_per_hour: float | None
    notes: list[str]

    @classmethod
    def of_report(
        cls,
        report: ledger_costs.CostReport,
        *,
        since: datetime | None,
        until: datetime | None,
        now: datetime,
        notes: list[str],
    ) -> CostPublic:
        """The public form of a ledger cost report."""
        return cls.model_validate(
            {
                "from": since,
                "to": until,
                "group_by": report.group_by,
                "now": now,
                **cls.fields_of(report.total),
                "provisional": cls.fields_of(report.provisional),
                "final": cls.fields_of(report.final),
                "groups": [
                    {"group": row.group, "status": row.status, **cls.fields_of(row)}
                    for row in report.groups
                ],
                "labor_rate_usd_per_hour": report.labor_rate_usd_per_hour,
                "notes": notes,
            }
        )
