"""Combining a panel's judgments into one decision, and the cheap-first cascade.

Rules shared by every method (see :func:`aggregate`):

- only judgments whose ``counts`` is true vote (status ``ok`` and decision ``verified`` or
  ``not_verified``) and whose weight is positive; ``unscored`` and ``error`` judgments and judges
  that abstain never count, least of all as a pass;
- fewer voters than ``quorum`` -> ``abstain`` with flag ``quorum_not_met`` and confidence 0;
- every method yields an aggregate ``p_verified``; with ``abstain_band=(lo, hi)`` a decision whose
  ``lo < p_verified < hi`` becomes ``abstain`` with flag ``low_confidence``;
- ``confidence`` is the share or probability behind the decision (``max(p, 1 - p)`` for
  majority, weighted and mean; see ``unanimous`` below), always in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from judge.panel import Aggregation, CascadeStage
from judge.verdict import FLAG_LOW_CONFIDENCE, FLAG_QUORUM, Decision, Judgment

METHODS: tuple[str, ...] = ("majority", "weighted", "mean", "unanimous")
DEFAULT_WEIGHT = 1.0


@dataclass(frozen=True)
class Aggregate:
    """A panel's combined decision.

    ``p_verified`` is ``None`` only when nobody voted; ``voters`` counts the judgments that
    voted; ``flags`` holds :data:`judge.verdict.FLAG_QUORUM` or ``FLAG_LOW_CONFIDENCE``.
    """

    decision: Decision
    confidence: float
    p_verified: float | None
    voters: int
    flags: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Vote:
    verified: bool
    weight: float
    p: float


def _votes(judgments: Sequence[Judgment], weights: Mapping[str, float]) -> list[_Vote]:
    votes: list[_Vote] = []
    for j in judgments:
        if not j.counts:
            continue
        w = float(weights.get(j.judge, DEFAULT_WEIGHT))
        if w <= 0:
            continue
        verified = j.decision == "verified"
        p = (1.0 if verified else 0.0) if j.p_verified is None else float(j.p_verified)
        # A vote's probability never argues against its own decision.
        p = max(p, 0.5) if verified else min(p, 0.5)
        votes.append(_Vote(verified=verified, weight=w, p=p))
    return votes


def _decide(p: float, *, tie_verified: bool) -> Decision:
    if p > 0.5 or (p == 0.5 and tie_verified):
        return "verified"
    if p < 0.5:
        return "not_verified"
    return "abstain"


def aggregate(
    judgments: Sequence[Judgment],
    *,
    method: Aggregation,
    weights: Mapping[str, float],
    quorum: int,
    abstain_band: tuple[float, float] | None,
) -> Aggregate:
    """Combine judgments into one decision.

    Parameters
    ----------
    judgments
        The panel's judgments for one outcome (any order: the result does not depend on it).
    method
        ``majority``: ``p`` is the share of verified votes; verified above one half,
        not_verified below, a tie abstains. ``weighted``: the same with votes weighted.
        ``mean``: ``p`` is the weighted mean of the voters' ``p_verified`` (a voter without one
        counts 1 or 0; a voter's probability is clipped to its own side of 0.5); verified when
        ``p >= 0.5``. ``unanimous``: verified only when every voter says verified, any
        not_verified vote makes it not_verified; ``p`` is the share of verified votes and the
        confidence is 1 when the voters agree, else the share of not_verified votes.
    weights
        Weight per judge name (missing names weigh 1). A judge weighing 0 does not vote.
    quorum
        Fewest voters needed for a decision (at least 1).
    abstain_band
        ``(lo, hi)``: abstain when ``lo < p < hi``; ``None`` disables it.

    Examples
    --------
    >>> from judge.verdict import Judgment
    >>> def j(name, decision, p=None, status="ok"):
    ...     return Judgment(judge=name, model="m", decision=decision, p_verified=p, status=status)
    >>> panel = [j("a", "verified", 0.9), j("b", "verified", 0.6), j("c", "not_verified", 0.1)]
    >>> agg = aggregate(panel, method="majority", weights={}, quorum=1, abstain_band=None)
    >>> agg.decision, round(agg.confidence, 3), agg.voters
    ('verified', 0.667, 3)
    >>> aggregate(panel, method="weighted", weights={"c": 3}, quorum=1, abstain_band=None).decision
    'not_verified'
    >>> mean = aggregate(panel, method="mean", weights={}, quorum=1, abstain_band=None)
    >>> round(mean.p_verified, 3)
    0.533
    >>> aggregate(panel, method="unanimous", weights={}, quorum=1, abstain_band=None).decision
    'not_verified'

    A tie abstains; unscored judgments never vote; a missing quorum abstains:

    >>> tie = [j("a", "verified"), j("b", "not_verified"), j("c", "verified", status="unscored")]
    >>> agg = aggregate(tie, method="majority", weights={}, quorum=1, abstain_band=None)
    >>> agg.decision, agg.voters, agg.flags
    ('abstain', 2, ['low_confidence'])
    >>> agg = aggregate(tie[:1], method="majority", weights={}, quorum=2, abstain_band=None)
    >>> agg.decision, agg.confidence, agg.flags
    ('abstain', 0.0, ['quorum_not_met'])

    The abstain band sends close calls to review:

    >>> agg = aggregate(panel, method="mean", weights={}, quorum=1, abstain_band=(0.3, 0.7))
    >>> agg.decision, agg.flags
    ('abstain', ['low_confidence'])
    """
    if method not in METHODS:
        raise ValueError(f"unknown aggregation {method!r}; use one of {', '.join(METHODS)}")
    if quorum < 1:
        raise ValueError(f"quorum must be at least 1, got {quorum}")
    bad = sorted(name for name, w in weights.items() if not (w >= 0 and math.isfinite(w)))
    if bad:
        raise ValueError(f"weights must be finite and non-negative; check: {', '.join(bad)}")
    if abstain_band is not None:
        lo, hi = abstain_band
        # The band is the zone of doubt around 0.5; a band beside 0.5 would make an extra
        # not_verified vote able to turn an abstention into a verified verdict.
        if not 0 <= lo <= 0.5 <= hi <= 1:
            raise ValueError(
                f"abstain_band must satisfy 0 <= low <= 0.5 <= high <= 1, got {abstain_band}"
            )

    votes = _votes(judgments, weights)
    n = len(votes)
    n_verified = sum(v.verified for v in votes)
    if method == "majority" or method == "unanimous":
        p = n_verified / n if n else None
    elif n == 0:
        p = None
    elif method == "weighted":
        p = math.fsum(v.weight for v in votes if v.verified) / math.fsum(v.weight for v in votes)
    else:  # mean
        p = math.fsum(v.weight * v.p for v in votes) / math.fsum(v.weight for v in votes)
        p = min(1.0, max(0.0, p))

    if p is None or n < quorum:
        return Aggregate("abstain", 0.0, p, n, [FLAG_QUORUM])

    if method == "unanimous":
        decision: Decision = "verified" if n_verified == n else "not_verified"
        confidence = 1.0 if n_verified in (0, n) else (n - n_verified) / n
    else:
        decision = _decide(p, tie_verified=method == "mean")
        confidence = max(p, 1.0 - p)

    if decision == "abstain":
        return Aggregate("abstain", confidence, p, n, [FLAG_LOW_CONFIDENCE])
    if abstain_band is not None and abstain_band[0] < p < abstain_band[1]:
        return Aggregate("abstain", confidence, p, n, [FLAG_LOW_CONFIDENCE])
    return Aggregate(decision, confidence, p, n, [])


def disagreement_reason(judgments: Sequence[Judgment], *, confident: float = 0.9) -> str | None:
    """Why the panel must abstain although it may have verified: a local judge (``signals`` or
    ``learned``, which read what the customer and the platform did, not the agent's words) is
    confidently ``not_verified`` while an LLM judge says ``verified``. The billed party writes
    the agent's messages; an LLM that was talked into "resolved" disagrees with the record.

    Parameters
    ----------
    judgments
        The judgments that ran.
    confident
        A local ``not_verified`` counts when ``1 - p_verified`` is at least this.

    Examples
    --------
    >>> from judge.verdict import Judgment
    >>> local = Judgment(judge="signals", model="local:signals", kind="signals",
    ...                  decision="not_verified", p_verified=0.05)
    >>> llm = Judgment(judge="gpt", model="m", decision="verified", p_verified=1.0)
    >>> disagreement_reason([local, llm])
    'judges disagree: signals is confidently not_verified (P(verified) 0.05) but gpt says verified'
    >>> disagreement_reason([local.model_copy(update={"p_verified": 0.3}), llm]) is None
    True
    """
    doubting = [
        j
        for j in judgments
        if j.kind in ("signals", "learned")
        and j.counts
        and j.decision == "not_verified"
        and 1.0 - (j.p_verified if j.p_verified is not None else 0.0) >= confident
    ]
    believing = [j for j in judgments if j.kind == "llm" and j.counts and j.decision == "verified"]
    if not doubting or not believing:
        return None
    d, b = doubting[0], believing[0]
    p = d.p_verified if d.p_verified is not None else 0.0
    return (
        f"judges disagree: {d.judge} is confidently not_verified (P(verified) {p:g}) but "
        f"{b.judge} says verified"
    )


@dataclass(frozen=True)
class CascadeResult:
    """The cascade's decision, every judgment it paid for, and how many stages ran."""

    aggregate: Aggregate
    judgments_run: list[Judgment]
    stages_run: int


async def run_cascade(
    stages: Sequence[CascadeStage],
    judge_stage: Callable[[list[str]], Awaitable[list[Judgment]]],
    *,
    aggregate_stage: Callable[[list[Judgment]], Aggregate],
) -> CascadeResult:
    """Run cheap stages first and escalate only when a stage is not confident.

    Stage ``k`` runs its judges (``judge_stage(names)``) and aggregates *its own* judgments. The
    cascade stops at the first stage whose aggregate decision is not ``abstain`` and whose
    confidence is at least the stage's ``min_confidence``; that stage decides. When no stage is
    confident, the last stage decides. A judge named in several stages runs once: later stages
    reuse its judgment.

    Examples
    --------
    >>> import asyncio
    >>> from judge.panel import CascadeStage
    >>> from judge.verdict import Judgment
    >>> replies = {"cheap": "verified", "big": "not_verified"}
    >>> async def judge_stage(names):
    ...     return [Judgment(judge=n, model="m", decision=replies[n]) for n in names]
    >>> def agg(js):
    ...     return aggregate(js, method="majority", weights={}, quorum=1, abstain_band=None)
    >>> stages = [CascadeStage(judges=["cheap"], min_confidence=0.9),
    ...           CascadeStage(judges=["big"])]
    >>> result = asyncio.run(run_cascade(stages, judge_stage, aggregate_stage=agg))
    >>> result.aggregate.decision, result.stages_run, [j.judge for j in result.judgments_run]
    ('verified', 1, ['cheap'])
    >>> replies["cheap"] = None  # the cheap judge's reply cannot be parsed
    >>> async def judge_stage(names):
    ...     return [Judgment(judge=n, model="m", status="unscored") if replies[n] is None
    ...             else Judgment(judge=n, model="m", decision=replies[n]) for n in names]
    >>> result = asyncio.run(run_cascade(stages, judge_stage, aggregate_stage=agg))
    >>> result.aggregate.decision, result.stages_run
    ('not_verified', 2)
    """
    if not stages:
        raise ValueError("a cascade needs at least one stage")
    done: dict[str, Judgment] = {}
    run: list[Judgment] = []
    result: Aggregate | None = None
    stages_run = 0
    for stage in stages:
        stages_run += 1
        new_names = [name for name in dict.fromkeys(stage.judges) if name not in done]
        if new_names:
            fresh = await judge_stage(new_names)
            for judgment in fresh:
                done.setdefault(judgment.judge, judgment)
            run.extend(fresh)
        stage_judgments = [done[name] for name in dict.fromkeys(stage.judges) if name in done]
        result = aggregate_stage(stage_judgments)
        if result.decision != "abstain" and result.confidence >= stage.min_confidence:
            break
    assert result is not None  # at least one stage ran
    return CascadeResult(aggregate=result, judgments_run=run, stages_run=stages_run)


def content_unjudged_reason(judgments: Sequence[Judgment]) -> str | None:
    """Why a ``verified`` decision must abstain: LLM judges ran (the judges that read the
    content), yet none of them voted ``verified``; a local judge's vote carried it. Local judges
    read signals the submitter may set (confirmation, CSAT), never the conversation or report,
    so they decide alone only where the panel asks no model (a cheap first stage that settled
    it, or a panel without LLM judges). An LLM that errored (a report padded past its context
    window) or whose pass was discarded (its evidence did not hold: a sign it was talked into
    it) leaves nobody who read the content saying it passed.

    Examples
    --------
    >>> from judge.verdict import Judgment
    >>> signals = Judgment(judge="signals", model="local:signals", kind="signals",
    ...                    decision="verified", p_verified=0.95)
    >>> fooled = Judgment(judge="gpt", model="m", status="unscored", reason="evidence: part 0")
    >>> print(content_unjudged_reason([signals, fooled]))  # doctest: +NORMALIZE_WHITESPACE
    no LLM judge passed it (gpt unscored: evidence: part 0); the local judges alone do not
    verify what the LLM judges read
    >>> content_unjudged_reason([signals]) is None
    True
    >>> passed = Judgment(judge="gpt2", model="m", decision="verified", p_verified=1.0)
    >>> content_unjudged_reason([signals, fooled, passed]) is None
    True
    """
    readers = [j for j in judgments if j.kind == "llm"]
    if not readers or any(j.counts and j.decision == "verified" for j in readers):
        return None
    said = "; ".join(
        f"{j.judge} {j.decision if j.status == 'ok' else j.status}"
        + (f": {_clip(j.reason)}" if j.status != "ok" and j.reason else "")
        for j in readers
    )
    return (
        f"no LLM judge passed it ({said}); the local judges alone do not verify what the LLM "
        "judges read"
    )


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
