"""Panel aggregation and the cascade: rules by example, invariants by property."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from judge.aggregate import Aggregate, aggregate, run_cascade
from judge.panel import CascadeStage
from judge.verdict import FLAG_LOW_CONFIDENCE, FLAG_QUORUM, Judgment

METHODS = ["majority", "weighted", "mean", "unanimous"]


def vote(name: str, decision: str | None, p: float | None = None, status: str = "ok") -> Judgment:
    return Judgment(judge=name, model="m", decision=decision, p_verified=p, status=status)  # type: ignore[arg-type]


def agg(judgments: list[Judgment], method: str = "majority", **kw: Any) -> Aggregate:
    options: dict[str, Any] = {"weights": {}, "quorum": 1, "abstain_band": None}
    options.update(kw)
    return aggregate(judgments, method=method, **options)  # type: ignore[arg-type]


# ---- rules by example -------------------------------------------------------------------------


def test_majority() -> None:
    js = [vote("a", "verified"), vote("b", "verified"), vote("c", "not_verified")]
    result = agg(js)
    assert result.decision == "verified"
    assert result.confidence == pytest.approx(2 / 3)
    assert result.p_verified == pytest.approx(2 / 3)
    assert result.voters == 3 and result.flags == []


def test_majority_tie_abstains() -> None:
    result = agg([vote("a", "verified"), vote("b", "not_verified")])
    assert result.decision == "abstain"
    assert result.confidence == 0.5


def test_weighted_uses_weights() -> None:
    js = [vote("a", "verified"), vote("b", "verified"), vote("big", "not_verified")]
    assert agg(js, "weighted", weights={"big": 1.0}).decision == "verified"
    heavy = agg(js, "weighted", weights={"big": 3.0})
    assert heavy.decision == "not_verified"
    assert heavy.confidence == pytest.approx(3 / 5)


def test_zero_weight_judge_does_not_vote() -> None:
    js = [vote("a", "verified"), vote("mute", "not_verified")]
    result = agg(js, "weighted", weights={"mute": 0.0})
    assert result.decision == "verified" and result.voters == 1


def test_mean_of_probabilities() -> None:
    js = [vote("a", "verified", 0.9), vote("b", "not_verified", 0.3)]
    result = agg(js, "mean")
    assert result.p_verified == pytest.approx(0.6)
    assert result.decision == "verified"
    assert result.confidence == pytest.approx(0.6)
    weighted = agg(js, "mean", weights={"b": 3.0})
    assert weighted.p_verified == pytest.approx((0.9 + 3 * 0.3) / 4)
    assert weighted.decision == "not_verified"


def test_mean_treats_missing_probability_as_the_decision() -> None:
    result = agg([vote("a", "verified"), vote("b", "not_verified", 0.2)], "mean")
    assert result.p_verified == pytest.approx(0.6)


def test_mean_exactly_one_half_is_verified() -> None:
    result = agg([vote("a", "verified", 0.5), vote("b", "not_verified", 0.5)], "mean")
    assert result.decision == "verified"


def test_mean_clips_a_probability_that_contradicts_its_own_decision() -> None:
    # a not_verified vote claiming P=0.9 must not pull the mean towards verified
    result = agg([vote("a", "not_verified", 0.9), vote("b", "not_verified", 0.1)], "mean")
    assert result.decision == "not_verified"


def test_unanimous() -> None:
    yes = [vote("a", "verified"), vote("b", "verified")]
    assert agg(yes, "unanimous").decision == "verified"
    assert agg(yes, "unanimous").confidence == 1.0
    split = [*yes, vote("c", "not_verified")]
    result = agg(split, "unanimous")
    assert result.decision == "not_verified"
    assert result.confidence == pytest.approx(1 / 3)
    assert agg([vote("a", "not_verified")], "unanimous").confidence == 1.0


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("status", ["unscored", "error"])
def test_unscored_and_errors_never_pass(method: str, status: str) -> None:
    js = [vote("a", "verified", 0.99, status=status), vote("b", "verified", 0.99, status=status)]
    result = agg(js, method)
    assert result.decision == "abstain"
    assert result.voters == 0
    assert result.p_verified is None
    assert result.flags == [FLAG_QUORUM]


@pytest.mark.parametrize("method", METHODS)
def test_abstaining_judges_do_not_vote(method: str) -> None:
    js = [vote("signals", "abstain", 0.5), vote("llm", "not_verified", 0.2)]
    result = agg(js, method)
    assert result.decision == "not_verified"
    assert result.voters == 1


def test_quorum() -> None:
    js = [vote("a", "verified"), vote("b", "verified", status="unscored")]
    result = agg(js, quorum=2)
    assert result.decision == "abstain"
    assert result.flags == [FLAG_QUORUM]
    assert result.confidence == 0.0
    assert agg([*js, vote("c", "verified")], quorum=2).decision == "verified"


@pytest.mark.parametrize(
    ("p", "decision"),
    [
        (0.2, "not_verified"),
        (0.3, "not_verified"),
        (0.5, "abstain"),
        (0.69, "abstain"),
        (0.7, "verified"),
        (0.9, "verified"),
    ],
)
def test_abstain_band_is_open(p: float, decision: str) -> None:
    d = "verified" if p >= 0.5 else "not_verified"
    result = agg([vote("a", d, p)], "mean", abstain_band=(0.3, 0.7))
    assert result.decision == decision
    assert (FLAG_LOW_CONFIDENCE in result.flags) is (decision == "abstain")


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"method": "plurality"}, "unknown aggregation"),
        ({"quorum": 0}, "quorum"),
        ({"weights": {"a": -1.0}}, "non-negative"),
        ({"weights": {"a": float("nan")}}, "non-negative"),
        ({"abstain_band": (0.8, 0.2)}, "abstain_band"),
        ({"abstain_band": (0.75, 1.0)}, "abstain_band"),
    ],
)
def test_invalid_options_are_rejected(kw: dict[str, Any], message: str) -> None:
    options: dict[str, Any] = {
        "method": "majority",
        "weights": {},
        "quorum": 1,
        "abstain_band": None,
        **kw,
    }
    with pytest.raises(ValueError, match=message):
        aggregate([vote("a", "verified")], **options)


# ---- properties -------------------------------------------------------------------------------

NAMES = [f"j{i}" for i in range(8)]


@st.composite
def judgments(draw: st.DrawFn, *, min_size: int = 0) -> list[Judgment]:
    names = draw(st.lists(st.sampled_from(NAMES), min_size=min_size, max_size=6, unique=True))
    out = []
    for name in names:
        status = draw(st.sampled_from(["ok", "ok", "ok", "unscored", "error"]))
        decision = draw(st.sampled_from(["verified", "not_verified", "abstain", None]))
        p = draw(st.one_of(st.none(), st.floats(0, 1)))
        out.append(vote(name, decision, p, status))
    return out


weights_st = st.dictionaries(st.sampled_from(NAMES), st.floats(0, 10), max_size=8)
bands = st.one_of(st.none(), st.tuples(st.floats(0, 0.5), st.floats(0.5, 1)))
options = st.fixed_dictionaries(
    {
        "method": st.sampled_from(METHODS),
        "weights": weights_st,
        "quorum": st.integers(1, 4),
        "abstain_band": bands,
    }
)


def unscored(name: str, status: str, decision: str | None, p: float | None) -> Judgment:
    return vote(name, decision, p, status)


unscored_st = st.builds(
    unscored,
    st.sampled_from([f"u{i}" for i in range(4)]),
    st.sampled_from(["unscored", "error"]),
    st.sampled_from(["verified", "not_verified", None]),
    st.one_of(st.none(), st.floats(0, 1)),
)


@settings(max_examples=150, deadline=None)
@given(judgments(), options)
def test_confidence_and_probability_are_in_bounds(js: list[Judgment], opts: dict[str, Any]) -> None:
    result = aggregate(js, **opts)
    assert 0.0 <= result.confidence <= 1.0
    assert result.p_verified is None or 0.0 <= result.p_verified <= 1.0
    assert result.voters == sum(1 for j in js if j.counts and opts["weights"].get(j.judge, 1.0) > 0)
    if result.voters < opts["quorum"]:
        assert result.decision == "abstain" and FLAG_QUORUM in result.flags


@settings(max_examples=150, deadline=None)
@given(judgments(), st.lists(unscored_st, min_size=1, max_size=4), options)
def test_unscored_judgments_never_change_the_verdict(
    js: list[Judgment], extra: list[Judgment], opts: dict[str, Any]
) -> None:
    assert aggregate(js + extra, **opts) == aggregate(js, **opts)


@settings(max_examples=150, deadline=None)
@given(st.lists(unscored_st, max_size=5), options)
def test_only_unscored_is_never_verified(js: list[Judgment], opts: dict[str, Any]) -> None:
    assert aggregate(js, **opts).decision == "abstain"


@settings(max_examples=150, deadline=None)
@given(judgments(), st.floats(0, 0.5), st.floats(0.01, 10), options)
def test_adding_a_not_verified_vote_never_turns_not_verified_into_verified(
    js: list[Judgment], p: float, w: float, opts: dict[str, Any]
) -> None:
    before = aggregate(js, **opts)
    extra = vote("newcomer", "not_verified", p)
    after = aggregate([*js, extra], **{**opts, "weights": {**opts["weights"], "newcomer": w}})
    if before.decision == "not_verified":
        assert after.decision != "verified"
    if before.decision != "verified":
        # nor can a not_verified vote create a verified verdict out of a tie or a band abstain
        assert after.decision != "verified" or FLAG_QUORUM in before.flags


@settings(max_examples=150, deadline=None)
@given(judgments(), options, st.randoms(use_true_random=False))
def test_permutation_invariance(js: list[Judgment], opts: dict[str, Any], rnd: Any) -> None:
    shuffled = list(js)
    rnd.shuffle(shuffled)
    assert aggregate(shuffled, **opts) == aggregate(js, **opts)


@settings(max_examples=100, deadline=None)
@given(judgments(min_size=1), st.sampled_from(METHODS))
def test_unanimous_verified_implies_every_other_method_verified(
    js: list[Judgment], method: str
) -> None:
    opts: dict[str, Any] = {"weights": {}, "quorum": 1, "abstain_band": None}
    if aggregate(js, method="unanimous", **opts).decision == "verified":
        assert aggregate(js, method=method, **opts).decision == "verified"  # type: ignore[arg-type]


# ---- cascade ----------------------------------------------------------------------------------


class Recorder:
    def __init__(self, replies: dict[str, Judgment]) -> None:
        self.replies = replies
        self.calls: list[list[str]] = []

    async def __call__(self, names: list[str]) -> list[Judgment]:
        self.calls.append(list(names))
        return [self.replies[n] for n in names]


def majority(js: list[Judgment]) -> Aggregate:
    return aggregate(js, method="majority", weights={}, quorum=1, abstain_band=None)


def mean(js: list[Judgment]) -> Aggregate:
    return aggregate(js, method="mean", weights={}, quorum=1, abstain_band=None)


STAGES = [
    CascadeStage(judges=["learned"], min_confidence=0.8),
    CascadeStage(judges=["mini-a", "mini-b"], min_confidence=0.8),
    CascadeStage(judges=["big"], min_confidence=0.9),
]


def test_confident_first_stage_stops_the_cascade() -> None:
    rec = Recorder({"learned": vote("learned", "verified", 0.95)})
    result = asyncio.run(run_cascade(STAGES, rec, aggregate_stage=mean))
    assert rec.calls == [["learned"]]
    assert result.stages_run == 1
    assert result.aggregate.decision == "verified"
    assert [j.judge for j in result.judgments_run] == ["learned"]


def test_unconfident_stage_escalates_and_the_confident_stage_decides() -> None:
    rec = Recorder(
        {
            "learned": vote("learned", "verified", 0.6),
            "mini-a": vote("mini-a", "not_verified", 0.1),
            "mini-b": vote("mini-b", "not_verified", 0.05),
            "big": vote("big", "verified", 0.99),
        }
    )
    result = asyncio.run(run_cascade(STAGES, rec, aggregate_stage=mean))
    assert rec.calls == [["learned"], ["mini-a", "mini-b"]]
    assert result.stages_run == 2
    assert result.aggregate.decision == "not_verified"
    assert len(result.judgments_run) == 3


def test_abstaining_stage_escalates_even_when_confident_looking() -> None:
    rec = Recorder(
        {
            "learned": vote("learned", "verified", status="unscored"),
            "mini-a": vote("mini-a", "verified"),
            "mini-b": vote("mini-b", "verified"),
            "big": vote("big", "not_verified"),
        }
    )
    result = asyncio.run(run_cascade(STAGES, rec, aggregate_stage=majority))
    assert result.stages_run == 2
    assert result.aggregate.decision == "verified"


def test_no_confident_stage_last_stage_decides() -> None:
    rec = Recorder(
        {
            "learned": vote("learned", "verified", 0.6),
            "mini-a": vote("mini-a", "verified", 0.7),
            "mini-b": vote("mini-b", "not_verified", 0.4),
            "big": vote("big", "not_verified", 0.2),
        }
    )
    result = asyncio.run(run_cascade(STAGES, rec, aggregate_stage=mean))
    assert result.stages_run == 3
    assert result.aggregate.decision == "not_verified"  # big alone: 0.2, confidence 0.8 < 0.9
    assert result.aggregate.confidence == pytest.approx(0.8)
    assert [j.judge for j in result.judgments_run] == ["learned", "mini-a", "mini-b", "big"]


def test_a_judge_in_two_stages_runs_once() -> None:
    stages = [
        CascadeStage(judges=["mini-a"], min_confidence=0.9),
        CascadeStage(judges=["mini-a", "big"], min_confidence=0.5),
    ]
    rec = Recorder({"mini-a": vote("mini-a", "verified", 0.6), "big": vote("big", "verified", 0.9)})
    result = asyncio.run(run_cascade(stages, rec, aggregate_stage=mean))
    assert rec.calls == [["mini-a"], ["big"]]
    assert result.aggregate.voters == 2
    assert [j.judge for j in result.judgments_run] == ["mini-a", "big"]


def test_empty_cascade_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one stage"):
        asyncio.run(run_cascade([], Recorder({}), aggregate_stage=majority))
