"""Human label models (``POST /v1/labels``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.outcomes import SCHEMA_MAX_BATCH
from api.schemas.text import OutcomeId, SafeStr, UnicodeInput
from judge.models import Timestamp

CriterionId = Annotated[SafeStr, Field(min_length=1, max_length=64)]


class LabelCreate(BaseModel):
    """One human judgement of one stored outcome."""

    model_config = ConfigDict(extra="forbid")

    outcome_id: OutcomeId
    resolved: bool = Field(description="Did the outcome really resolve the issue / is it right?")
    criteria: dict[CriterionId, bool] = Field(
        default_factory=dict, max_length=200, description="Per-criterion judgement, optional."
    )
    note: SafeStr | None = Field(default=None, max_length=10_000)
    by: SafeStr | None = Field(default=None, max_length=200, description="Who labelled it.")
    at: Timestamp | None = Field(default=None, description="When (naive: UTC; not in the future).")


class LabelBatch(UnicodeInput):
    model_config = ConfigDict(extra="forbid")

    labels: list[LabelCreate] = Field(
        min_length=1,
        max_length=SCHEMA_MAX_BATCH,
        description="At most OUTCOME_JUDGE_MAX_BATCH (default 1000) labels, else 413.",
    )


class LabelItem(BaseModel):
    index: int
    outcome_id: str
    status: Literal["created", "unchanged"] = Field(
        description="unchanged: the same label content was already recorded for this outcome."
    )


class LabelResult(BaseModel):
    count: int
    created: int
    unchanged: int
    items: list[LabelItem]
