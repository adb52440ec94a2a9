"""Human labels: the ground truth calibration compares verdicts against (used at once)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from api.deps import SCOPE_REFUSED, EngineDep, ReviewerDep, SettingsDep
from api.errors import ApiError, ErrorResponse
from api.schemas.labels import LabelBatch, LabelResult
from judge.models import Label
from ledger.ingest import InvalidItemError, LabelIn, UnknownOutcomesError, record_labels

router = APIRouter(prefix="/v1", tags=["labels"])


@router.post(
    "/labels",
    response_model=LabelResult,
    responses={
        **SCOPE_REFUSED,
        404: {
            "model": ErrorResponse,
            "description": "Labels for outcome ids this tenant has not stored; nothing written.",
        },
        413: {"model": ErrorResponse, "description": "Over the batch cap or the body limit."},
    },
)
async def post_labels(
    body: LabelBatch, tenant: ReviewerDep, engine: EngineDep, settings: SettingsDep
) -> LabelResult:
    """Record human labels (all or nothing). The same label content again is ``unchanged``.

    Every ``outcome_id`` must be an outcome of this tenant: otherwise 404 listing the unknown
    ids in ``details.unknown_ids`` (another tenant's ids look the same) and nothing is written.
    Labels count in ``GET /v1/calibration`` immediately.
    """
    if len(body.labels) > settings.max_batch:
        raise ApiError(
            413,
            f"{len(body.labels)} labels in one request; send at most {settings.max_batch} "
            "per request (OUTCOME_JUDGE_MAX_BATCH)",
            details={"max_batch": settings.max_batch, "count": len(body.labels)},
        )
    items = [
        LabelIn(
            outcome_id=item.outcome_id,
            label=Label(
                resolved=item.resolved,
                by=item.by,
                at=item.at,
                criteria=dict(item.criteria),
                note=item.note,
            ),
        )
        for item in body.labels
    ]
    try:
        written = await asyncio.to_thread(record_labels, engine, tenant.name, items)
    except InvalidItemError as exc:
        field = f"labels.{exc.index}" + (f".{exc.field}" if exc.field else "")
        raise ApiError(
            422,
            f"{field}: {exc.message}; nothing was written",
            details=[{"field": field, "location": "body", "message": exc.message}],
        ) from None
    except UnknownOutcomesError as exc:
        raise ApiError(404, str(exc), details={"unknown_ids": exc.ids[:100]}) from None
    created = sum(1 for item in written if item["status"] == "created")
    return LabelResult.model_validate(
        {
            "count": len(written),
            "created": created,
            "unchanged": len(written) - created,
            "items": written,
        }
    )
