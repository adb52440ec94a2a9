"""The Verdict contract (DESIGN.md) and the per-judge and per-call records inside it."""

from __future__ import annotations

import itertools
import os
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

Decision = Literal["verified", "not_verified", "abstain"]
Tier = Literal["confirmed", "assumed", "assisted"]
JudgeStatus = Literal["ok", "unscored", "error"]
JudgeKind = Literal["llm", "signals", "learned", "guard"]

FLAG_INJECTION = "possible_prompt_injection"
FLAG_QUORUM = "quorum_not_met"
FLAG_LOW_CONFIDENCE = "low_confidence"
FLAG_GUARD_UNAVAILABLE = "guard_unavailable"
FLAG_DISAGREEMENT = "judges_disagree"
FLAG_CONTENT_UNJUDGED = "no_content_judge_passed"
FLAG_UNATTESTED = "unattested_report_input"


def utcnow() -> datetime:
    return datetime.now(UTC)


#: What became of a call: ``ok`` (a reply), ``error`` (none), ``pending`` (recorded before it was
#: sent, no outcome yet), ``unknown`` (still pending when its process died: it may have been
#: billed; ``cost_usd`` is then the estimate).
CallStatus = Literal["ok", "error", "pending", "unknown"]


class _CallIds:
    """Unique call ids without a read of the OS's random source each: a random prefix per
    process and a counter.

    ``uuid4`` reads the random source for every attempt; on the event loop's hot path that is a
    system call that releases the GIL to helper threads. A new prefix is drawn when the process
    id changes (a forked child), so two processes never share a sequence.
    """

    def __init__(self) -> None:
        self._pid = -1
        self._prefix = ""
        self._counter = itertools.count()

    def next(self) -> str:
        if os.getpid() != self._pid:
            self._pid, self._prefix = os.getpid(), uuid.uuid4().hex[:16]
            self._counter = itertools.count()
        return f"{self._prefix}{next(self._counter):016x}"


_CALL_IDS = _CallIds()


def new_call_id() -> str:
    """A 32-character hex id, unique across processes (random prefix) and within one (counter).

    Examples
    --------
    >>> a, b = new_call_id(), new_call_id()
    >>> len(a), a != b, a[:16] == b[:16]
    (32, True, True)
    """
    return _CALL_IDS.next()


class JudgeCall(BaseModel):
    """One attempt at one model: what was sent, what came back, what it cost.

    Every attempt is recorded, retries and failures included, because every attempt may be billed.
    An attempt sent to a provider is recorded *before* it is sent (``pending``, with
    ``estimated_cost_usd``: its prompt tokens at the model's price, and ``expires_at``: when it
    must have ended), then completed; one that a killed process left pending is settled as
    ``unknown`` at its estimated cost (``ledger.callstore.settle_pending``).
    """

    outcome_id: str
    judge: str
    model: str
    sample: int = 0
    attempt: int = 1
    cache_key: str
    prompt_digest: str
    prompt: list[dict[str, Any]] = Field(default_factory=list)
    reply: str | None = None
    status: CallStatus = "ok"
    error: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    latency_ms: int = 0
    cached: bool = False
    at: datetime = Field(default_factory=utcnow)
    call_id: str = Field(default_factory=lambda: new_call_id())
    estimated_cost_usd: float | None = None
    expires_at: datetime | None = None


class CriterionResult(BaseModel):
    score: float | None = None
    passed: bool | None = None


class Judgment(BaseModel):
    """What one judge of the panel concluded about one outcome.

    ``status`` is ``unscored`` when the reply could not be parsed (``reason`` says why) and
    ``error`` when no reply came back; neither ever counts as a pass.
    """

    judge: str
    model: str
    kind: JudgeKind = "llm"
    status: JudgeStatus = "ok"
    decision: Decision | None = None
    p_verified: float | None = Field(default=None, ge=0.0, le=1.0)
    scores: dict[str, float] = Field(default_factory=dict)
    rationale: str = ""
    reason: str | None = None
    samples: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    latency_ms: int = 0
    cached: bool = False
    calls: list[JudgeCall] = Field(default_factory=list, exclude=True)

    @property
    def counts(self) -> bool:
        """Whether this judgment may take part in a vote."""
        return self.status == "ok" and self.decision in ("verified", "not_verified")


class Verdict(BaseModel):
    outcome_id: str
    decision: Decision
    confidence: float = Field(ge=0.0, le=1.0)
    tier: Tier | None = None
    rubric: str
    panel: str
    flags: list[str] = Field(default_factory=list)
    criteria: dict[str, CriterionResult] = Field(default_factory=dict)
    judges: list[Judgment] = Field(default_factory=list)
    cost_usd: float = 0.0
    reasons: list[str] = Field(default_factory=list)
    content_hash: str | None = None
    injection_score: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="The injection detector's highest probability over the outcome's texts "
        "(None when no detector is loaded).",
    )
    injection_detector: str | None = Field(
        default=None, description="Which detector file scored it (injection-detector@<sha>)."
    )

    def to_json(self) -> str:
        return self.model_dump_json()
