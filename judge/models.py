"""The Outcome contract (DESIGN.md): one support ticket or generated report to verify.

Validated at the boundary: unknown keys are rejected (a typo such as ``lable`` must not silently
drop a human label), sizes are capped, costs cannot be negative, text must be valid Unicode, ids
are normalised to NFC and times are ISO 8601 strings (:mod:`judge.input_rules`).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    model_validator,
)

from judge.input_rules import (
    check_id,
    from_ledger,
    iso_time_only,
    outcome_id_rule,
    refuse_surrogates,
    utc_representable,
)

OutcomeKind = Literal["support_ticket", "report"]
Role = Literal["customer", "agent", "tool", "system"]
TouchKind = Literal["ai", "human", "router", "automation"]

MAX_TEXT_CHARS = 200_000
MAX_MESSAGES = 2_000
#: The fields a judge sees: what :meth:`Outcome.content_hash` covers (labels, costs and
#: metadata are outside it).
CONTENT_FIELDS: tuple[str, ...] = ("kind", "conversation", "report", "signals", "touches")


#: One encoder for every digest (``json.dumps`` with these options builds a new one per call).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(data: Any) -> str:
    """The one JSON spelling of ``data`` every digest is taken of (sorted keys, no spaces).

    >>> canonical_json({"b": 1, "a": "é"})
    '{"a":"é","b":1}'
    """
    return _CANONICAL.encode(data)


def digest_of(data: Any) -> str:
    """SHA-256 (hex) of :func:`canonical_json` of ``data``."""
    return text_digest(canonical_json(data))


def text_digest(text: str) -> str:
    """SHA-256 (hex) of ``text`` (UTF-8): :func:`digest_of` for a text already encoded."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def content_hash_of(dump: dict[str, Any]) -> str:
    """:meth:`Outcome.content_hash` from the outcome's ``model_dump(mode="json")`` (what a batch
    ingest, which already holds the dump, stores without dumping the outcome again)."""
    return digest_of({field: dump[field] for field in CONTENT_FIELDS})


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive time is taken to be UTC already (as the ledger stores it).

    >>> as_utc(datetime(2026, 3, 1, 12)).isoformat()
    '2026-03-01T12:00:00+00:00'
    """
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


#: A point in time the ledger can store: an ISO 8601 string (never a number: see
#: :mod:`judge.input_rules`) or a ``datetime``; naive means UTC; an aware one must exist in UTC.
Timestamp = Annotated[datetime, BeforeValidator(iso_time_only), AfterValidator(utc_representable)]
#: An outcome id: NFC-normalised visible text (see :func:`judge.input_rules.check_id`).
OutcomeIdText = Annotated[str, AfterValidator(outcome_id_rule)]


class _Strict(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=False, str_strip_whitespace=False, allow_inf_nan=False
    )


class Message(_Strict):
    """One turn of a conversation; ``public=False`` marks an internal note."""

    role: Role
    text: str = Field(default="", max_length=MAX_TEXT_CHARS)
    author: str | None = Field(default=None, max_length=200)
    at: Timestamp | None = None
    name: str | None = Field(default=None, max_length=200, description="tool name for role=tool")
    tool_calls: list[dict[str, Any]] = Field(default_factory=list, max_length=200)
    public: bool = True


class Source(_Strict):
    id: str = Field(min_length=1, max_length=200)
    text: str = Field(max_length=MAX_TEXT_CHARS)


class Report(_Strict):
    brief: str = Field(max_length=MAX_TEXT_CHARS)
    text: str = Field(max_length=MAX_TEXT_CHARS)
    sources: list[Source] = Field(default_factory=list, max_length=500)

    @model_validator(mode="after")
    def _distinct_source_ids(self, info: ValidationInfo) -> Report:
        # The report cites sources by id and the judge quotes them by number: two sources of
        # one id (or a blank one) make a citation ambiguous. What the ledger stored is taken
        # as stored.
        if from_ledger(info):
            return self
        seen: set[str] = set()
        for index, source in enumerate(self.sources):
            # Visible text only, as an outcome id: "s1" and "s1" + a zero-width space look alike.
            shown = check_id(source.id, f"sources.{index}.id")
            if shown in seen:
                raise ValueError(
                    f"sources.{index}.id {source.id!r} is the id of an earlier source; "
                    "give each source its own id"
                )
            seen.add(shown)
        return self


class Signals(_Strict):
    customer_confirmed: bool | None = None
    csat: int | None = Field(default=None, ge=1, le=5)
    escalated: bool | None = None
    reopened_at: Timestamp | None = None
    closed_at: Timestamp | None = None
    recontact_at: Timestamp | None = None


class Touch(_Strict):
    actor: str = Field(min_length=1, max_length=200)
    kind: TouchKind
    at: Timestamp | None = None


class AgentInfo(_Strict):
    name: str | None = Field(default=None, max_length=200)
    version: str | None = Field(default=None, max_length=100)
    model_path: str | None = Field(default=None, max_length=200)
    # Below 1e8: the ledger stores money as NUMERIC(20, 12).
    cost_usd: float | None = Field(default=None, ge=0, lt=1e8)
    tokens_in: int | None = Field(default=None, ge=0)
    tokens_out: int | None = Field(default=None, ge=0)


class VendorClaim(_Strict):
    """What the vendor itself says about the outcome, kept verbatim so ``judge audit`` can
    reconcile it with our verdict. Not judged evidence: outside :meth:`Outcome.content_hash`.

    Attributes
    ----------
    vendor
        Where the claim came from: ``intercom``, ``zendesk``, or a mapping's name.
    resolution_state
        The vendor's own resolution verdict, e.g. Intercom ``ai_agent.resolution_state``
        (``assumed_resolution``, ``confirmed_resolution``, ``escalated``...) or a Zendesk
        automated-resolution marker.
    status
        The ticket or conversation status as the vendor reports it (``solved``, ``closed``...).
    automated
        True when the vendor claims an AI agent resolved it, False when it says not.
    evidence
        Which input fields the claim was read from, e.g. ``ai_agent.resolution_state``.
    """

    vendor: str = Field(min_length=1, max_length=100)
    resolution_state: str | None = Field(default=None, max_length=200)
    status: str | None = Field(default=None, max_length=200)
    automated: bool | None = None
    evidence: list[str] = Field(default_factory=list, max_length=50)


class Label(_Strict):
    """A human judgement of the outcome: the ground truth calibration compares judges against."""

    resolved: bool
    by: str | None = Field(default=None, max_length=200)
    at: Timestamp | None = None
    criteria: dict[str, bool] = Field(default_factory=dict)
    note: str | None = Field(default=None, max_length=10_000)

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any, info: ValidationInfo) -> Any:
        # pydantic refuses a lone surrogate in a str field but says neither where nor why, and
        # lets one through in a dict key (``criteria``).
        return refuse_surrogates(data, cls.__name__, info)


class Outcome(_Strict):
    """One unit of work to verify: ``id``, ``kind`` and a conversation or report are required."""

    id: OutcomeIdText = Field(min_length=1, max_length=200)
    kind: OutcomeKind
    tenant: str | None = Field(default=None, min_length=1, max_length=100)
    conversation: list[Message] = Field(default_factory=list, max_length=MAX_MESSAGES)
    report: Report | None = None
    signals: Signals = Field(default_factory=Signals)
    touches: list[Touch] = Field(default_factory=list, max_length=MAX_MESSAGES)
    agent: AgentInfo = Field(default_factory=AgentInfo)
    label: Label | None = None
    vendor_claim: VendorClaim | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any, info: ValidationInfo) -> Any:
        # Before field validation: ``metadata`` and ``tool_calls`` hold arbitrary JSON, which
        # pydantic does not check for lone surrogates; the ledger and verdict files cannot
        # encode them (and PostgreSQL would store U+FFFD instead).
        return refuse_surrogates(data, cls.__name__, info)

    @model_validator(mode="after")
    def _has_content(self) -> Outcome:
        if self.kind == "support_ticket" and not self.conversation:
            raise ValueError("a support_ticket needs a non-empty 'conversation'")
        if self.kind == "report" and self.report is None:
            raise ValueError("a report needs a 'report' object with brief, text and sources")
        return self

    def content_hash(self) -> str:
        """SHA-256 of everything a judge sees; labels, costs and metadata do not change it."""
        return content_hash_of(self.model_dump(mode="json", include=set(CONTENT_FIELDS)))

    def customer_messages(self) -> list[Message]:
        return [m for m in self.conversation if m.role == "customer"]

    def last_customer_message_at(self) -> datetime | None:
        times = [m.at for m in self.customer_messages() if m.at is not None]
        return max(times) if times else None
