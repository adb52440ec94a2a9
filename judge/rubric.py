"""Rubric models: criteria, the decision rule, signal rules and the content-hash version.

Loading YAML files (with file/line/field errors) lives in :mod:`judge.rubric_loader`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from judge.models import OutcomeKind
from judge.verdict import Tier
from judge.versioning import ContentVersioned

SLUG = r"^[a-z][a-z0-9_]{0,63}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class RangeScale(_Strict):
    min: float
    max: float

    @model_validator(mode="after")
    def _ordered(self) -> RangeScale:
        if not self.min < self.max:
            raise ValueError(f"scale min ({self.min}) must be below max ({self.max})")
        return self


# Caps on rubric text: every criterion's text goes into every judge prompt, so a rubric cannot
# make each call arbitrarily long (and costly).
_TEXT = 4000
_SHORT = 1000


class Example(_Strict):
    text: str = Field(max_length=_TEXT)
    score: float
    explanation: str = Field(default="", max_length=_SHORT)


#: The requirement of text the billed party did not write, under the name that reads right for
#: each kind of outcome (either name works for either kind; see judge.evidence).
INDEPENDENT_EVIDENCE = frozenset({"customer_state", "source", "customer_last"})


class Criterion(_Strict):
    id: str = Field(pattern=SLUG)
    question: str = Field(min_length=1, max_length=_SHORT)
    scale: Literal["binary"] | RangeScale = "binary"
    weight: float = Field(default=1.0, ge=0)
    gate: bool = False
    pass_at: float | None = Field(
        default=None, description="lowest passing score; binary: 1, range: the midpoint"
    )
    evaluation_steps: list[Annotated[str, Field(max_length=_SHORT)]] = Field(
        default_factory=list, max_length=30
    )
    examples: list[Example] = Field(default_factory=list, max_length=10)
    evidence: Literal["any", "customer_state", "source", "customer_last"] | None = Field(
        default=None,
        description="what a passing LLM judgment must cite for this criterion (a number and a "
        "verbatim quote): 'any' part of the outcome, or text the billed party did not write "
        "('customer_state' and 'source' are two names of that one requirement): in a support "
        "ticket a customer message, a tool result or a platform signal, never an agent "
        "message; in a report one of its sources, never the report itself. 'customer_last': "
        "the same, and when the customer wrote after the agent's last message, that last "
        "customer message among the citations (what the customer said last is what says "
        "whether it failed). None: no citation needed.",
    )

    @model_serializer(mode="wrap")
    def _omit_unset_evidence(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, object]:
        # Rubrics that do not ask for evidence keep the version they had before it existed.
        data: dict[str, object] = handler(self)
        if data.get("evidence") is None:
            data.pop("evidence", None)
        return data

    @property
    def bounds(self) -> tuple[float, float]:
        if self.scale == "binary":
            return (0.0, 1.0)
        return (self.scale.min, self.scale.max)

    @property
    def pass_threshold(self) -> float:
        if self.pass_at is not None:
            return self.pass_at
        lo, hi = self.bounds
        return hi if self.scale == "binary" else (lo + hi) / 2

    def normalise(self, score: float) -> float:
        """Map a score on this criterion's scale to [0, 1]."""
        lo, hi = self.bounds
        return (score - lo) / (hi - lo)

    def passes(self, score: float) -> bool:
        return score >= self.pass_threshold

    @model_validator(mode="after")
    def _pass_inside_scale(self) -> Criterion:
        lo, hi = self.bounds
        if self.pass_at is not None and not lo <= self.pass_at <= hi:
            raise ValueError(f"pass_at {self.pass_at} is outside the scale [{lo}, {hi}]")
        return self


class DecisionRule(_Strict):
    """Verified when every gate passes and the weighted normalised score reaches ``threshold``."""

    threshold: float = Field(default=0.7, ge=0, le=1)
    require_gates: bool = True


class SignalCondition(_Strict):
    """A conjunction of named predicates over outcome signals and touches (no free-form code)."""

    customer_confirmed: bool | None = None
    csat_at_most: int | None = Field(default=None, ge=1, le=5)
    csat_at_least: int | None = Field(default=None, ge=1, le=5)
    escalated: bool | None = None
    reopened_within_hours: float | None = Field(default=None, gt=0)
    recontact_within_hours: float | None = Field(default=None, gt=0)
    human_touch: bool | None = None
    #: The customer wrote after the agent's last public message, and those words say the problem
    #: is not solved or ask for a person (:func:`judge.customer_words.reads_as_failure`).
    customer_reports_failure: bool | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> SignalCondition:
        if not self.model_fields_set:
            raise ValueError("a signal rule needs at least one condition under 'when'")
        return self


class SignalRule(_Strict):
    """Effects: ``not_verified`` vetoes, ``abstain`` sends to review, ``tier`` sets the tier."""

    id: str = Field(pattern=SLUG)
    when: SignalCondition
    effect: Literal["not_verified", "abstain", "tier"]
    tier: Tier | None = None
    reason: str = ""

    @model_validator(mode="after")
    def _tier_given(self) -> SignalRule:
        if self.effect == "tier" and self.tier is None:
            raise ValueError("effect 'tier' needs a 'tier' (confirmed, assumed or assisted)")
        return self


class Rubric(_Strict, ContentVersioned):
    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,63}$")
    kind: OutcomeKind
    description: str = Field(default="", max_length=_TEXT)
    criteria: list[Criterion] = Field(min_length=1, max_length=50)
    decision: DecisionRule = Field(default_factory=DecisionRule)
    signals: list[SignalRule] = Field(default_factory=list)
    window_hours: float = Field(default=72, gt=0)
    citation: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_ids(self) -> Rubric:
        seen: set[str] = set()
        for c in self.criteria:
            if c.id in seen:
                raise ValueError(f"criterion id '{c.id}' appears twice")
            seen.add(c.id)
        return self

    def criterion(self, criterion_id: str) -> Criterion:
        for c in self.criteria:
            if c.id == criterion_id:
                return c
        raise KeyError(criterion_id)
