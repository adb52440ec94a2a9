"""Turn per-criterion scores into a rubric decision (shared by the LLM judge and the engine).

Verified means: every gate passes (when the rubric's decision rule requires gates) and the
weighted normalised score reaches ``rubric.decision.threshold``. A criterion without a score makes
the whole result *unscored* and names the criterion: a missing score is never a pass and never 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, Field

from judge.rubric import Rubric
from judge.verdict import CriterionResult

__all__ = ["RubricScore", "score_rubric"]


class RubricScore(BaseModel):
    """The rubric's verdict on one set of criterion scores.

    ``decision`` is ``None`` exactly when ``status`` is ``unscored``; ``reason`` then says which
    criteria had no score.
    """

    status: Literal["scored", "unscored"]
    decision: Literal["verified", "not_verified"] | None = None
    criteria: dict[str, CriterionResult] = Field(default_factory=dict)
    weighted_score: float | None = Field(default=None, ge=0.0, le=1.0)
    gates_passed: bool | None = None
    missing: list[str] = Field(default_factory=list)
    reason: str | None = None

    @property
    def verified(self) -> bool:
        return self.decision == "verified"


def score_rubric(rubric: Rubric, scores: Mapping[str, float | None]) -> RubricScore:
    """Apply ``rubric``'s decision rule to ``scores`` (criterion id -> score on its own scale).

    Parameters
    ----------
    rubric : Rubric
        The rubric whose criteria, weights, gates and threshold decide.
    scores : mapping of str to float or None
        One score per criterion, on that criterion's scale. ``None`` (or an absent key) means the
        criterion was not scored.

    Returns
    -------
    RubricScore
        Per-criterion results, the weighted normalised score in [0, 1], whether every gate passed,
        and the decision; ``status="unscored"`` (decision ``None``) when any criterion is missing.

    Raises
    ------
    ValueError
        When a score names a criterion the rubric does not have, is not finite, or lies outside
        its criterion's scale.

    Examples
    --------
    >>> from judge.rubric import Criterion, Rubric
    >>> r = Rubric(name="demo", kind="report", criteria=[
    ...     Criterion(id="accurate", question="Is it accurate?", gate=True),
    ...     Criterion(id="clear", question="How clear?", scale={"min": 1, "max": 5}),
    ... ])
    >>> score_rubric(r, {"accurate": 1, "clear": 4}).decision
    'verified'
    >>> score_rubric(r, {"accurate": 0, "clear": 5}).decision
    'not_verified'
    >>> score_rubric(r, {"clear": 5}).reason
    "no score for criterion 'accurate'"
    """
    known = {c.id for c in rubric.criteria}
    unknown = sorted(set(scores) - known)
    if unknown:
        raise ValueError(
            f"scores name criteria that rubric '{rubric.name}' does not have: {', '.join(unknown)}"
            f" (known: {', '.join(sorted(known))})"
        )
    results: dict[str, CriterionResult] = {}
    missing: list[str] = []
    for criterion in rubric.criteria:
        raw = scores.get(criterion.id)
        if raw is None:
            missing.append(criterion.id)
            results[criterion.id] = CriterionResult()
            continue
        value = float(raw)
        lo, hi = criterion.bounds
        if not math.isfinite(value) or not lo <= value <= hi:
            raise ValueError(
                f"score {raw!r} for criterion '{criterion.id}' is outside its scale "
                f"[{lo:g}, {hi:g}]"
            )
        results[criterion.id] = CriterionResult(score=value, passed=criterion.passes(value))

    if missing:
        names = ", ".join(f"'{m}'" for m in missing)
        noun = "criterion" if len(missing) == 1 else "criteria"
        return RubricScore(
            status="unscored",
            criteria=results,
            missing=missing,
            reason=f"no score for {noun} {names}",
        )

    weighted = _weighted_normalised(rubric, results)
    gates_passed = all(
        bool(results[c.id].passed) for c in rubric.criteria if c.gate
    )  # True when the rubric has no gates
    gates_ok = gates_passed or not rubric.decision.require_gates
    verified = gates_ok and weighted >= rubric.decision.threshold
    return RubricScore(
        status="scored",
        decision="verified" if verified else "not_verified",
        criteria=results,
        weighted_score=weighted,
        gates_passed=gates_passed,
    )


def _weighted_normalised(rubric: Rubric, results: Mapping[str, CriterionResult]) -> float:
    """Weighted mean of normalised scores; an unweighted mean when every weight is 0."""
    pairs = [(c.weight, c.normalise(float(results[c.id].score or 0.0))) for c in rubric.criteria]
    total = sum(w for w, _ in pairs)
    if total <= 0:
        value = sum(s for _, s in pairs) / len(pairs)
    else:
        value = sum(w * s for w, s in pairs) / total
    return min(1.0, max(0.0, value))
