"""Billing meters and cost per verified outcome (what a billing system pulls).

- ``GET /v1/meters/verified-outcomes``: verified outcomes per UTC day or month in ``[from, to)``,
  grouped by agent, tier, agent version and/or model path, each row ``provisional`` or ``final``
  (:func:`ledger.meters.verified_outcomes`).
- ``GET /v1/metrics/cost-per-verified-outcome``: (agent inference + judge calls + human review)
  / verified outcomes, with numerator and denominator, overall and per group
  (:func:`ledger.cost_report.cost_report`).

Times without a UTC offset are taken as UTC (as everywhere in the ledger).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from api.deps import EngineDep, MeterEngineDep, TenantDep
from api.errors import ApiError, ErrorResponse
from api.schemas.meters import (
    CostPublic,
    MeterPublic,
)
from judge.models import Timestamp, as_utc
from ledger.cost_figures import CostReport
from ledger.cost_report import GROUP_DIMENSIONS
from ledger.dimensions import GroupByError, parse_group_by
from ledger.meters import DIMENSIONS, MAX_WINDOWS, MeterError, verified_outcomes

router = APIRouter(tags=["meters"], responses={422: {"model": ErrorResponse}})

_GROUP_BY_HELP = "Comma-separated dimensions to group by"


def _invalid(field: str, message: str) -> ApiError:
    return ApiError(
        422,
        f"{field}: {message}",
        details=[{"field": field, "location": "query", "message": message}],
    )


def _dims(raw: str | None, allowed: tuple[str, ...]) -> list[str]:
    try:
        return parse_group_by(raw, allowed)
    except GroupByError as exc:
        raise _invalid("group_by", str(exc).removeprefix("group_by: ")) from None


def _meter_field(field: str) -> str:
    return {"since": "from", "until": "to"}.get(field, field)


@router.get(
    "/v1/meters/verified-outcomes",
    response_model=MeterPublic,
    response_model_by_alias=True,
)
async def get_verified_outcomes(
    tenant: TenantDep,
    engine: EngineDep,
    replica: MeterEngineDep,
    from_: Annotated[
        Timestamp, Query(alias="from", description="Start (inclusive), ISO 8601; UTC if no offset.")
    ],
    to: Annotated[Timestamp, Query(description="End (exclusive), ISO 8601; UTC if no offset.")],
    window: Annotated[Literal["day", "month"], Query(description="UTC day or month.")] = "day",
    group_by: Annotated[
        str | None,
        Query(max_length=200, description=f"{_GROUP_BY_HELP}: {', '.join(DIMENSIONS)}."),
    ] = None,
) -> MeterPublic:
    """Verified outcomes per window and group in the half-open range `[from, to)`.

    An outcome counts in the window holding its verification anchor (its last customer message,
    else its close time), once, while its latest verdict is `verified`; when that window was
    already final or its billing period closed, it is booked now instead (`adjustments`:
    `late_arrival`, `moved`), and a count taken back from a final window is a -1 booked now
    (`withdrawn`, or a revocation). A row is `final` when its period is closed, or its window
    ended 96 h ago and every outcome in it has passed its rubric's window plus 24 h grace; a
    final row never changes. Empty windows have no row. At most 1000 windows per request.
    With `OUTCOME_JUDGE_METER_READ_URL` set, a read replica counts once it has replayed the
    final mark (final rows are then the same; provisional rows may lag by its delay).
    """
    dims = _dims(group_by, DIMENSIONS)
    # Timestamp (the ledger's own time type) refused numbers and times with no UTC equivalent.
    since, until, now = as_utc(from_), as_utc(to), datetime.now(UTC)
    try:
        rows = await asyncio.to_thread(
            verified_outcomes,
            engine,
            tenant.name,
            since=since,
            until=until,
            window=window,
            group_by=dims,
            now=now,
            read_engine=replica,
        )
    except MeterError as exc:
        field = _meter_field(exc.field)
        message = str(exc).replace("since", "from").replace("until", "to")
        raise _invalid(field, message) from None
    return MeterPublic.model_validate(
        {
            "from": since,
            "to": until,
            "window": window,
            "group_by": dims,
            "now": now,
            "rows": rows,
        }
    )


def _cost(engine: Any, tenant: str, **kwargs: Any) -> tuple[CostReport, list[str]]:
    from ledger.cost_report import cost_report, report_notes

    report = cost_report(engine, tenant, window_hours=None, **kwargs)
    return report, report_notes(report)


@router.get(
    "/v1/metrics/cost-per-verified-outcome",
    response_model=CostPublic,
    response_model_by_alias=True,
)
async def get_cost_per_verified_outcome(
    tenant: TenantDep,
    engine: EngineDep,
    from_: Annotated[
        Timestamp | None,
        Query(alias="from", description="Verdicts recorded from (inclusive); UTC if no offset."),
    ] = None,
    to: Annotated[
        Timestamp | None, Query(description="Verdicts recorded before (exclusive).")
    ] = None,
    group_by: Annotated[
        str | None,
        Query(max_length=200, description=f"{_GROUP_BY_HELP}: {', '.join(GROUP_DIMENSIONS)}."),
    ] = None,
    period: Annotated[
        Literal["day", "month"], Query(description="The `period` dimension's length (UTC).")
    ] = "month",
    labor_rate: Annotated[
        float | None,
        Query(ge=0, le=1e6, description="USD per hour of human review (else not in the cost)."),
    ] = None,
) -> CostPublic:
    """Cost per verified outcome = (agent inference + judge calls + human review) / verified.

    Always with numerator (`cost_usd`) and denominator (`verified`); `value` is None with a
    `reason` when nothing was verified. Each outcome counts once, by its latest verdict
    recorded in `[from, to)`, except one recorded after the outcome was final, which changes
    nothing here as in the meters (verified counts agree); groups are split by status
    (`provisional`/`final`).
    """
    dims = _dims(group_by, GROUP_DIMENSIONS)
    since = None if from_ is None else as_utc(from_)
    until = None if to is None else as_utc(to)
    if since is not None and until is not None and since >= until:
        raise _invalid(
            "from", f"from ({since.isoformat()}) must be before to ({until.isoformat()})"
        )
    now = datetime.now(UTC)
    report, notes = await asyncio.to_thread(
        _cost,
        engine,
        tenant.name,
        dims=dims,
        since=since,
        until=until,
        now=now,
        period=period,
        labor_rate=labor_rate,
    )
    return CostPublic.of_report(report, since=since, until=until, now=now, notes=notes)


__all__ = ["MAX_WINDOWS", "router"]
