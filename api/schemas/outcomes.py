"""Outcome ingest and read models: native outcomes, CloudEvents envelopes, per-item results."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.schemas.text import OutcomeId
from judge.input_rules import refuse_surrogates
from judge.models import Outcome, Timestamp

#: The largest batch the schema admits; the server's own cap is ``OUTCOME_JUDGE_MAX_BATCH``.
SCHEMA_MAX_BATCH = 100_000
#: Where a CloudEvent's ``source`` is kept in the outcome (unless the data already sets it).
EVENT_SOURCE_KEY = "event_source"


class CloudEventIn(BaseModel):
    """A CloudEvents 1.0 structured-mode event whose ``data`` is an outcome.

    ``data.id`` defaults to the event ``id``; ``source`` is recorded in the outcome's
    ``metadata.event_source`` (unless ``metadata`` already has that key). ``type``, ``time`` and
    the other attributes are validated and not stored. Extension attributes are refused.
    """

    model_config = ConfigDict(extra="forbid")

    specversion: Literal["1.0"]
    id: OutcomeId
    source: str = Field(min_length=1, max_length=1000)
    type: str = Field(min_length=1, max_length=200)
    time: Timestamp | None = None
    subject: str | None = Field(default=None, max_length=1000)
    dataschema: str | None = Field(default=None, max_length=1000)
    datacontenttype: Literal["application/json"] | None = None
    data: dict[str, Any] = Field(
        description="The outcome (see Outcome); its 'id' may be left out to use the event id."
    )


class IngestRequest(BaseModel):
    """``POST /v1/outcomes`` with ``Content-Type: application/json``."""

    model_config = ConfigDict(extra="forbid")

    outcomes: list[Outcome | CloudEventIn] = Field(
        min_length=1,
        max_length=SCHEMA_MAX_BATCH,
        description="Native outcomes or CloudEvents envelopes (mixed is fine); at most "
        "OUTCOME_JUDGE_MAX_BATCH (default 1000) items, else 413.",
    )
    base_revisions: dict[OutcomeId, Annotated[int, Field(ge=0)]] | None = Field(
        default=None,
        max_length=SCHEMA_MAX_BATCH,
        description="Optional {outcome id: revision your change is based on} (0: must be new); "
        "409 when the stored latest revision differs.",
    )


class IngestEnvelope(BaseModel):
    """The top level of an ``application/json`` ingest body (items validated one by one)."""

    model_config = ConfigDict(extra="forbid")

    outcomes: list[Any] = Field(min_length=1)
    base_revisions: dict[OutcomeId, Annotated[int, Field(ge=0)]] | None = None

    @field_validator("base_revisions", mode="before")
    @classmethod
    def _valid_unicode(cls, value: Any) -> Any:
        # The outcomes are checked item by item (so errors carry the item index); the keys
        # here are ids, refused with the field named rather than pydantic's U+FFFD spelling.
        return refuse_surrogates(value, cls.__name__)


IngestStatus = Literal["created", "revised", "unchanged"]


class IngestItem(BaseModel):
    index: int = Field(description="Position of the item in the request.")
    id: str
    revision: int = Field(ge=1)
    status: IngestStatus = Field(
        description="created (revision 1), revised (changed payload: a new revision) or "
        "unchanged (the latest revision already has this payload)."
    )


class IngestTotals(BaseModel):
    created: int
    revised: int
    unchanged: int


class IngestResult(BaseModel):
    count: int
    totals: IngestTotals
    items: list[IngestItem]


class RevisionPublic(BaseModel):
    revision: int
    content_hash: str
    received_at: datetime


class VerdictPublic(BaseModel):
    outcome_revision: int
    decision: str
    tier: str | None
    confidence: float
    rubric: str
    panel: str
    cost_usd: float
    flags: list[str]
    criteria: dict[str, Any]
    reasons: list[str]
    judges: list[dict[str, Any]]
    injection_score: float | None = Field(
        default=None, description="The injection detector's probability (see the verdict)."
    )
    created_at: datetime


class LabelPublic(BaseModel):
    resolved: bool
    by: str | None
    at: datetime | None
    criteria: dict[str, bool]
    note: str | None
    source: str = Field(
        description="api (POST /v1/labels), web (the review page), outcome (embedded in an "
        "outcome) or submitted (embedded, sent with a key without the review scope: not counted)."
    )
    created_at: datetime


class MeterEntryPublic(BaseModel):
    delta: int = Field(description="+1: the outcome counts here; -1: a count taken back here.")
    reason: str = Field(
        description="`verified` (at its anchor), `late_arrival` or `moved` (booked when written: "
        "the anchor's window was already final or closed), `withdrawn` (a newer verdict took "
        "back a count in a final window), or a revocation (`reopened`, `csat_low`, "
        "`human_overturn`, `came_back`)."
    )
    booked_at: datetime = Field(description="The moment that places it in a meter window.")
    anchor_at: datetime = Field(description="The outcome's verification anchor then.")
    tier: str | None
    agent: str | None
    created_at: datetime


class OutcomePublic(BaseModel):
    id: str
    revision: int = Field(description="The latest revision.")
    outcome: dict[str, Any] = Field(description="The latest revision's payload (an Outcome).")
    revisions: list[RevisionPublic]
    verdicts: list[VerdictPublic] = Field(description="Newest first.")
    labels: list[LabelPublic]
    meter: list[MeterEntryPublic] = Field(
        default_factory=list,
        description="Where the outcome counts in the verified-outcomes meter, in booking order "
        "(the sum of `delta` is 1 while it counts, else 0).",
    )


class OutcomeSummary(BaseModel):
    id: str
    kind: str
    revision: int
    received_at: datetime


class OutcomeList(BaseModel):
    items: list[OutcomeSummary]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null at end.")
