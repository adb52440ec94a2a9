"""Verification jobs: ``POST /v1/verifications`` queues one, workers run it, ``GET`` shows it."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from sqlalchemy.engine import Engine

from api.deps import EngineDep, TenantDep
from api.errors import ApiError, ErrorResponse, not_found
from api.schemas.text import OutcomeId, SafeStr, UnicodeInput
from judge.models import Timestamp
from ledger.jobs import MAX_JOB_OUTCOMES, JobFilter, JobInfo

router = APIRouter(prefix="/v1", tags=["verifications"])

OutcomeKind = Literal["support_ticket", "report"]
# No NUL characters: PostgreSQL text cannot hold them (a query with one fails, not misses).
_NO_NUL = r"^[^\x00]*$"
DocName = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=_NO_NUL)]
AgentName = Annotated[SafeStr, Field(min_length=1, max_length=200)]


class VerificationFilter(BaseModel):
    """Select the tenant's outcomes by their latest revision (all conditions must hold)."""

    model_config = ConfigDict(extra="forbid")

    kind: OutcomeKind | None = None
    agent: AgentName | None = Field(
        default=None, description="The agent's name (`agent.name` of the outcome)."
    )
    received_from: Timestamp | None = Field(
        default=None, description="Received at or after (inclusive)."
    )
    received_to: Timestamp | None = Field(default=None, description="Received before (exclusive).")
    unverified_only: bool = Field(
        default=False, description="Only outcomes with no verdict on their current content."
    )


class VerificationCreate(UnicodeInput):
    """A job: which outcomes, under which rubric(s), by which panel."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"outcome_ids": ["T-1001", "T-1002"], "rubric": "support-resolution"},
                {"filter": {"kind": "report", "unverified_only": True}, "panel": "default"},
            ]
        },
    )

    outcome_ids: list[OutcomeId] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_JOB_OUTCOMES,
        description=f"Ids of stored outcomes (at most {MAX_JOB_OUTCOMES:,}); give this or filter.",
    )
    filter: VerificationFilter | None = Field(
        default=None, description="Select outcomes instead of listing ids (resolved at creation)."
    )
    rubric: DocName | None = Field(
        default=None,
        description="One rubric for the job's outcomes (all of its kind). Default: the shipped "
        "rubric for each kind (support-resolution, report-accuracy).",
    )
    rubrics: dict[OutcomeKind, DocName] | None = Field(
        default=None, description="A rubric per outcome kind, for jobs mixing kinds."
    )
    panel: DocName = Field(default="default", description="A stored panel's name, or default.")

    @model_validator(mode="after")
    def _one_of_each(self) -> VerificationCreate:
        if (self.outcome_ids is None) == (self.filter is None):
            raise ValueError("give either outcome_ids or filter (exactly one)")
        if self.rubric is not None and self.rubrics is not None:
            raise ValueError("give rubric (one for all) or rubrics (per kind), not both")
        return self


class Progress(BaseModel):
    total: int
    completed: int = Field(description="Items with a verdict.")
    failed: int = Field(description="Items that could not be verified (see error).")
    pending: int
    fraction: float = Field(description="(completed + failed) / total; 1.0 for an empty job.")


class Decisions(BaseModel):
    verified: int = 0
    not_verified: int = 0
    abstain: int = 0


class VerificationPublic(BaseModel):
    """A job's state: ``queued`` -> ``running`` -> ``done`` (or ``failed``); ``waiting`` while
    its tenant's daily judge budget is spent (``waiting_reason`` says until when)."""

    id: str
    status: Literal["queued", "running", "waiting", "done", "failed", "cancelled"]
    rubrics: dict[str, str] = Field(description="Outcome kind -> rubric name@version.")
    panel: str
    selection: dict[str, Any] = Field(description="How the outcomes were chosen.")
    progress: Progress
    counts: Decisions
    cost_usd: float = Field(
        description="Judge cost so far (USD): every judge call the ledger recorded for this job, "
        "retries, failed attempts and calls of a worker that died included."
    )
    unknown_calls: int = Field(
        default=0,
        description="Calls whose worker died before the reply: booked at their estimated cost "
        "(prompt tokens at the model's price); the provider may have billed them.",
    )
    waiting_reason: str | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, job: JobInfo) -> VerificationPublic:
        return cls(
            id=job.job_id,
            status=job.status,  # type: ignore[arg-type]
            rubrics=job.rubrics,
            panel=job.panel,
            selection=job.selection,
            progress=Progress(
                total=job.total,
                completed=job.completed,
                failed=job.failed,
                pending=job.pending,
                fraction=job.fraction,
            ),
            counts=Decisions(**job.counts),
            cost_usd=float(job.cost_usd),
            unknown_calls=job.unknown_calls,
            waiting_reason=job.waiting_reason,
            error=job.error,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
        )


class VerificationList(BaseModel):
    items: list[VerificationPublic]


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
        404: {"model": ErrorResponse, "description": "Outcome ids this tenant does not have."},
        422: {"model": ErrorResponse, "description": "Invalid body, unknown rubric or panel."},
    },
)
async def create_verification(
    body: VerificationCreate, tenant: TenantDep, engine: EngineDep, response: Response
) -> VerificationPublic:
    """Queue a verification job; workers run it. Poll `GET /v1/verifications/{id}`.

    Outcome ids this tenant does not have (unknown, or another tenant's) answer 404 with every
    such id in `details.unknown_ids`, and nothing is queued.
    """
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
