"""Verification job models (``/v1/verifications``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from api.schemas.text import OutcomeId, SafeStr, UnicodeInput
from judge.models import Timestamp
from ledger.jobs import MAX_JOB_OUTCOMES, JobInfo

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
