"""Verification jobs: ``POST /v1/verifications`` queues one, workers run it, ``GET`` shows it."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy.engine import Engine

from api.deps import SCOPE_REFUSED, EngineDep, SubmitterDep, TenantDep
from api.errors import ApiError, ErrorResponse, not_found
from api.schemas.verifications import (
    VerificationCreate,
    VerificationList,
    VerificationPublic,
)
from ledger.jobs import JobFilter, JobInfo

router = APIRouter(prefix="/v1", tags=["verifications"])


def chosen_beyond_defaults(body: VerificationCreate) -> list[str]:
    """What a job body chooses about how its outcomes are judged, beyond the tenant's defaults
    (the panel named ``default`` and the rubric named for each kind, whatever the tenant stored
    under those names): a panel or rubric by another name, or any ``@version``.

    Only a key with the ``configure`` scope may choose: the party billed per resolution sends
    the outcomes and queues their verification, and a panel of its choosing (the shipped local
    panel, which reads the confirmation it sets, or an older version of the buyer's) would
    verify what the buyer's panel holds back.
    """
    from judge.rubric_loader import DEFAULT_RUBRICS

    chosen = [] if body.panel == "default" else [f"panel {body.panel!r}"]
    if body.rubric is not None and body.rubric not in DEFAULT_RUBRICS.values():
        chosen.append(f"rubric {body.rubric!r}")
    for kind, name in (body.rubrics or {}).items():
        if name != DEFAULT_RUBRICS.get(str(kind)):
            chosen.append(f"rubric {name!r} for {kind}")
    return chosen


def _create(engine: Engine, tenant: str, body: VerificationCreate) -> JobInfo:
    from judge.yamlsafe import LocatedError
    from ledger.documents import DocumentError, get_document, resolve_panel, resolve_rubrics
    from ledger.jobs import JobError, UnknownOutcomesError, create_job, select_outcomes

    flt = None if body.filter is None else JobFilter(**body.filter.model_dump())
    try:
        chosen = select_outcomes(engine, tenant, outcome_ids=body.outcome_ids, filter=flt)
    except UnknownOutcomesError as exc:
        # 404 like every other id this tenant does not have (labels answer the same way).
        raise ApiError(404, str(exc), details={"unknown_ids": exc.missing[:1000]}) from None
    except JobError as exc:
        raise ApiError(422, str(exc)) from None
    try:
        named: dict[str, str] = {str(k): v for k, v in (body.rubrics or {}).items()}
        if body.rubric is not None:
            info, _ = get_document(engine, tenant, "rubric", body.rubric)
            kind = info.document.kind  # type: ignore[union-attr]
            others = sorted(k for k in chosen.kinds if k != kind)
            if others:
                raise ApiError(
                    422,
                    f"rubric {body.rubric!r} grades {kind} outcomes but the job also selects "
                    f"{', '.join(others)} outcomes; use rubrics: {{kind: rubric name}}",
                    details={"field": "rubric", "name": body.rubric},
                )
            named = {kind: body.rubric}
        rubrics = resolve_rubrics(engine, tenant, named, list(chosen.kinds))
        panel = resolve_panel(engine, tenant, body.panel)
    except (DocumentError, LocatedError) as exc:
        raise ApiError(422, str(exc), details={"field": "rubric/panel"}) from None
    # Rubrics are pinned to the version resolved now, so every item of the job is judged the
    # same way even if the tenant stores a new version meanwhile.
    pinned = {kind: rubric.ref for kind, rubric in rubrics.items()}
    panel_name = body.panel if body.panel == "default" else panel.ref
    try:
        return create_job(
            engine,
            tenant,
            rubrics=pinned,
            panel=panel_name,
            outcome_ids=body.outcome_ids,
            filter=flt,
        )
    except UnknownOutcomesError as exc:  # pragma: no cover - outcomes are never deleted
        raise ApiError(404, str(exc), details={"unknown_ids": exc.missing[:1000]}) from None
    except JobError as exc:
        raise ApiError(422, str(exc)) from None


@router.post(
    "/verifications",
    status_code=202,
    response_model=VerificationPublic,
    responses={
        **SCOPE_REFUSED,
        404: {"model": ErrorResponse, "description": "Outcome ids this tenant does not have."},
        422: {"model": ErrorResponse, "description": "Invalid body, unknown rubric or panel."},
    },
)
async def create_verification(
    body: VerificationCreate, tenant: SubmitterDep, engine: EngineDep, response: Response
) -> VerificationPublic:
    """Queue a verification job; workers run it. Poll `GET /v1/verifications/{id}`.

    Outcome ids this tenant does not have (unknown, or another tenant's) answer 404 with every
    such id in `details.unknown_ids`, and nothing is queued. Naming a panel or rubric other
    than the tenant's defaults (`default`, and the rubric named for each kind), or any
    `@version`, needs the `configure` scope too (403 without it).
    """
    chosen = chosen_beyond_defaults(body)
    if chosen and "configure" not in tenant.key_scopes:
        raise ApiError(
            403,
            f"this API key may not choose how outcomes are judged ({', '.join(chosen)}): that "
            "needs the 'configure' scope; without it a job uses the tenant's panel named "
            "'default' and its rubrics named support-resolution and report-accuracy (a "
            "configure key stores those)",
            details={"required_scope": "configure", "chosen": chosen,
                     "key_scopes": sorted(tenant.key_scopes)},
        )  # fmt: skip
    job = await asyncio.to_thread(_create, engine, tenant.name, body)
    response.headers["Location"] = f"/v1/verifications/{job.job_id}"
    return VerificationPublic.of(job)


@router.get(
    "/verifications/{job_id}",
    response_model=VerificationPublic,
    responses={404: {"model": ErrorResponse, "description": "No such job for this tenant."}},
)
async def get_verification(job_id: str, tenant: TenantDep, engine: EngineDep) -> VerificationPublic:
    """A job's status, progress, decisions so far and judge cost so far."""
    from ledger.jobs import get_job

    if len(job_id) > 40 or "\x00" in job_id:
        raise not_found("verification", job_id[:40].replace("\x00", ""))
    job = await asyncio.to_thread(get_job, engine, tenant.name, job_id)
    if job is None:
        raise not_found("verification", job_id)
    return VerificationPublic.of(job)


@router.get("/verifications", response_model=VerificationList)
async def list_verifications(
    tenant: TenantDep,
    engine: EngineDep,
    limit: Annotated[int, Query(ge=1, le=200, description="How many, newest first.")] = 20,
) -> VerificationList:
    """The tenant's most recent jobs, newest first."""
    from ledger.jobs import list_jobs

    jobs = await asyncio.to_thread(list_jobs, engine, tenant.name, limit=limit)
    return VerificationList(items=[VerificationPublic.of(j) for j in jobs])
