"""score_rubric: gates, weights, thresholds, and missing scores that never pass."""

from __future__ import annotations

import pytest

from judge.rubric import Criterion, DecisionRule, RangeScale, Rubric
from judge.scoring import score_rubric


def _rubric(*, threshold: float = 0.7, require_gates: bool = True) -> Rubric:
    return Rubric(
        name="demo",
        kind="support_ticket",
        criteria=[
            Criterion(id="understood", question="Understood?", gate=True, weight=1),
            Criterion(id="helpful", question="Helpful?", scale=RangeScale(min=1, max=5), weight=3),
        ],
        decision=DecisionRule(threshold=threshold, require_gates=require_gates),
    )


def test_all_gates_and_threshold_met_is_verified() -> None:
    result = score_rubric(_rubric(), {"understood": 1, "helpful": 4})
    assert result.status == "scored" and result.decision == "verified"
    # weighted normalised: (1 * 1.0 + 3 * 0.75) / 4
    assert result.weighted_score == pytest.approx(0.8125)
    assert result.gates_passed is True
    assert result.criteria["helpful"].score == 4 and result.criteria["helpful"].passed is True


def test_failed_gate_blocks_even_a_high_weighted_score() -> None:
    result = score_rubric(_rubric(threshold=0.5), {"understood": 0, "helpful": 5})
    assert result.weighted_score == pytest.approx(0.75)
    assert result.gates_passed is False
    assert result.decision == "not_verified"


def test_gates_ignored_when_the_rule_does_not_require_them() -> None:
    result = score_rubric(
        _rubric(threshold=0.5, require_gates=False), {"understood": 0, "helpful": 5}
    )
    assert result.gates_passed is False and result.decision == "verified"


def test_below_threshold_is_not_verified() -> None:
    # (1 + 3 * 0.5) / 4 = 0.625 < 0.7
    result = score_rubric(_rubric(), {"understood": 1, "helpful": 3})
    assert result.decision == "not_verified"
    assert result.criteria["helpful"].passed is True  # midpoint passes the criterion itself


def test_missing_score_is_unscored_and_names_the_criterion() -> None:
    for scores in ({"understood": 1}, {"understood": 1, "helpful": None}):
        result = score_rubric(_rubric(), scores)
        assert result.status == "unscored"
        assert result.decision is None and not result.verified
        assert result.missing == ["helpful"]
        assert result.reason is not None and "'helpful'" in result.reason
        assert result.weighted_score is None


def test_invalid_scores_are_rejected_with_the_criterion_named() -> None:
    with pytest.raises(ValueError, match="'helpful' is outside its scale"):
        score_rubric(_rubric(), {"understood": 1, "helpful": 6})
    with pytest.raises(ValueError, match="helpful"):
        score_rubric(_rubric(), {"understood": 1, "helpful": float("nan")})
    with pytest.raises(ValueError, match="does not have: typo"):
        score_rubric(_rubric(), {"understood": 1, "helpful": 4, "typo": 1})


def test_zero_weights_fall_back_to_unweighted_mean_and_pass_at_is_used() -> None:
    rubric = Rubric(
        name="zero",
        kind="report",
        criteria=[
            Criterion(id="a", question="A?", weight=0, scale=RangeScale(min=0, max=10), pass_at=8),
            Criterion(id="b", question="B?", weight=0),
        ],
        decision=DecisionRule(threshold=0.8),
    )
    result = score_rubric(rubric, {"a": 7, "b": 1})
    assert result.weighted_score == pytest.approx(0.85)
    assert result.criteria["a"].passed is False
    assert result.decision == "verified"  # no gates, so a non-passing criterion does not block
