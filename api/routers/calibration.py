"""Calibration: how well this tenant's verdicts agree with its human labels.

The same rows (:func:`ledger.calibration_source.load_calibration_rows`) and the same function
(:func:`calibration.report.calibrate`) as ``judge calibrate --db URL --tenant T --json``, so the
numbers are identical for the same filters and ``seed``.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.deps import EngineDep, TenantDep
from api.errors import ApiError
from api.schemas.calibration import CalibrationReport
from api.schemas.text import SafeStr
from calibration.report import GROUPINGS
from judge.models import Timestamp, as_utc
from ledger.calibration_source import load_calibration_rows

router = APIRouter(prefix="/v1", tags=["calibration"])

Ref = Annotated[
    SafeStr | None,
    Query(max_length=300, description="name (every version) or name@version (exactly that one)."),
]


def _report(
    engine: Any,
    tenant: str,
    *,
    rubric: str | None,
    panel: str | None,
    since: datetime | None,
    until: datetime | None,
    by: list[str],
    seed: int | None,
    n_boot: int,
) -> dict[str, Any]:
    from calibration.join import CalibrationInputError
    from calibration.report import calibrate

    rows = load_calibration_rows(
        engine, tenant, rubric=rubric, panel=panel, since=since, until=until
    )
    if not rows.total_verdicts:
        wanted = ", ".join(
            f"{k} {v.isoformat() if isinstance(v, datetime) else v}"
            for k, v in (("rubric", rubric), ("panel", panel), ("from", since), ("to", until))
            if v is not None
        )
        raise ValueError(
            "no verdicts for this tenant"
            + (f" matching {wanted}" if wanted else "")
            + "; verify outcomes first (POST /v1/verifications) or widen the filters"
        )
    try:
        report = calibrate(
            rows.verdicts,
            rows.labels,
            by=by,
            seed=seed,
            n_boot=n_boot,
            unlabelled=rows.unlabelled,
        ).to_dict()
    except CalibrationInputError as exc:
        raise ValueError(str(exc)) from None
    return report


@router.get("/calibration", response_model=CalibrationReport)
async def get_calibration(
    tenant: TenantDep,
    engine: EngineDep,
    panel: Ref = None,
    rubric: Ref = None,
    since: Annotated[
        Timestamp | None,
        Query(alias="from", description="Verdicts recorded at or after (ISO 8601; naive: UTC)."),
    ] = None,
    until: Annotated[
        Timestamp | None,
        Query(alias="to", description="Verdicts recorded before (ISO 8601; naive: UTC)."),
    ] = None,
    by: Annotated[
        str,
        Query(max_length=100, description="Comma-separated groupings: judge, criterion."),
    ] = "judge,criterion",
    seed: Annotated[
        int | None,
        Query(ge=0, le=2**32 - 1, description="Bootstrap seed (reproducible intervals)."),
    ] = None,
    n_boot: Annotated[
        int, Query(ge=1, le=10_000, description="Bootstrap draws for kappa intervals.")
    ] = 1000,
) -> CalibrationReport:
    """The ``judge calibrate --json`` report over this tenant's verdicts and labels.

    Narrowed to one ``panel`` and ``rubric`` and to verdicts recorded in ``[from, to)``.
    Like the CLI, it refuses (422, with the reason) when there is nothing to compare: no
    verdicts match, or no verdict has a human label.
    """
    groupings = [g.strip() for g in by.split(",") if g.strip()]
    bad = [g for g in groupings if g not in GROUPINGS]
    if bad:
        raise ApiError(
            422,
            f"by: unknown grouping {', '.join(bad)}; use a comma-separated subset of "
            f"{','.join(GROUPINGS)}",
            details=[{"field": "by", "location": "query", "message": "unknown grouping"}],
        )
    # A time without a zone is UTC (as the CLI's --from/--to); Timestamp refused the times
    # that have no UTC equivalent, so the conversion cannot overflow.
    since = None if since is None else as_utc(since)
    until = None if until is None else as_utc(until)
    try:
        report = await asyncio.to_thread(
            _report,
            engine,
            tenant.name,
            rubric=rubric,
            panel=panel,
            since=since,
            until=until,
            by=groupings,
            seed=seed,
            n_boot=n_boot,
        )
    except ValueError as exc:
        raise ApiError(422, str(exc), code="invalid") from None
    return CalibrationReport.model_validate(report)
