"""Rubric signal rules: vetoes, review triggers and tiers from outcome signals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from judge.models import Message, Outcome, Signals, Touch
from judge.rubric import Criterion, Rubric, SignalRule
from judge.signal_rules import apply_signal_rules

CLOSED = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def rubric(*rules: dict[str, Any]) -> Rubric:
    return Rubric(
        name="support-test",
        kind="support_ticket",
        criteria=[Criterion(id="resolved", question="Was it resolved?")],
        signals=[SignalRule.model_validate(r) for r in rules],
    )


def outcome(
    *,
    signals: dict[str, Any] | None = None,
    touches: list[tuple[str, str]] = (),  # type: ignore[assignment]
    agent_at: datetime | None = None,
) -> Outcome:
    return Outcome(
        id="T-1",
        kind="support_ticket",
        conversation=[
            Message(role="customer", text="my order is late", at=CLOSED - timedelta(minutes=9)),
            Message(role="agent", text="refunded", at=agent_at),
        ],
        signals=Signals(**(signals or {})),
        touches=[Touch(actor=a, kind=k) for a, k in touches],  # type: ignore[arg-type]
    )


SHIPPED_STYLE = rubric(
    {
        "id": "reopened",
        "when": {"reopened_within_hours": 72},
        "effect": "not_verified",
        "reason": "reopened within 72 h",
    },
    {
        "id": "low_csat",
        "when": {"csat_at_most": 3},
        "effect": "not_verified",
        "reason": "CSAT 3 or below",
    },
    {
        "id": "unsure",
        "when": {"escalated": True, "csat_at_least": 4},
        "effect": "abstain",
        "reason": "escalated yet happy",
    },
    {"id": "human", "when": {"human_touch": True}, "effect": "tier", "tier": "assisted"},
    {
        "id": "confirmed",
        "when": {"customer_confirmed": True},
        "effect": "tier",
        "tier": "confirmed",
    },
)


def test_no_signals_means_nothing_fires_and_tier_assumed() -> None:
    effects = apply_signal_rules(outcome(), SHIPPED_STYLE)
    assert effects.fired == []
    assert effects.veto_reasons == [] and effects.abstain_reasons == []
    assert effects.tier == "assumed"
    assert not effects.vetoed


@pytest.mark.parametrize(
    ("hours_later", "vetoed"), [(1, True), (71.9, True), (72, True), (72.1, False), (240, False)]
)
def test_reopen_is_measured_from_closed_at(hours_later: float, vetoed: bool) -> None:
    o = outcome(signals={"closed_at": CLOSED, "reopened_at": CLOSED + timedelta(hours=hours_later)})
    effects = apply_signal_rules(o, SHIPPED_STYLE)
    assert effects.vetoed is vetoed
    assert (effects.veto_reasons == ["reopened within 72 h"]) is vetoed


def test_reopen_falls_back_to_last_agent_message_when_not_closed() -> None:
    agent_at = CLOSED
    inside = outcome(signals={"reopened_at": CLOSED + timedelta(hours=5)}, agent_at=agent_at)
    outside = outcome(signals={"reopened_at": CLOSED + timedelta(days=5)}, agent_at=agent_at)
    assert apply_signal_rules(inside, SHIPPED_STYLE).fired == ["reopened"]
    assert apply_signal_rules(outside, SHIPPED_STYLE).fired == []


def test_reopen_without_any_reference_time_still_counts() -> None:
    o = outcome(signals={"reopened_at": CLOSED + timedelta(days=30)})
    assert apply_signal_rules(o, SHIPPED_STYLE).veto_reasons == ["reopened within 72 h"]


def test_naive_and_aware_timestamps_compare_as_utc() -> None:
    o = outcome(
        signals={
            "closed_at": CLOSED.replace(tzinfo=None),
            "reopened_at": CLOSED + timedelta(hours=2),
        }
    )
    assert apply_signal_rules(o, SHIPPED_STYLE).fired == ["reopened"]


def test_events_after_now_are_not_known_yet() -> None:
    o = outcome(signals={"closed_at": CLOSED, "reopened_at": CLOSED + timedelta(hours=10)})
    before = apply_signal_rules(o, SHIPPED_STYLE, now=CLOSED + timedelta(hours=5))
    after = apply_signal_rules(o, SHIPPED_STYLE, now=CLOSED + timedelta(hours=11))
    assert not before.vetoed
    assert after.vetoed


def test_recontact_rule() -> None:
    r = rubric(
        {"id": "came_back", "when": {"recontact_within_hours": 24}, "effect": "not_verified"}
    )
    soon = outcome(signals={"closed_at": CLOSED, "recontact_at": CLOSED + timedelta(hours=3)})
    late = outcome(signals={"closed_at": CLOSED, "recontact_at": CLOSED + timedelta(hours=30)})
    assert apply_signal_rules(soon, r).veto_reasons == ["came_back"]  # id when no reason
    assert apply_signal_rules(late, r).veto_reasons == []


@pytest.mark.parametrize(("csat", "vetoed"), [(1, True), (3, True), (4, False), (None, False)])
def test_csat_bound(csat: int | None, vetoed: bool) -> None:
    assert apply_signal_rules(outcome(signals={"csat": csat}), SHIPPED_STYLE).vetoed is vetoed


def test_all_conditions_of_a_rule_must_hold() -> None:
    only_escalated = outcome(signals={"escalated": True})
    both = outcome(signals={"escalated": True, "csat": 5})
    assert apply_signal_rules(only_escalated, SHIPPED_STYLE).abstain_reasons == []
    assert apply_signal_rules(both, SHIPPED_STYLE).abstain_reasons == ["escalated yet happy"]


def test_unknown_boolean_matches_neither_true_nor_false() -> None:
    r = rubric({"id": "not_escalated", "when": {"escalated": False}, "effect": "abstain"})
    assert apply_signal_rules(outcome(), r).fired == []
    assert apply_signal_rules(outcome(signals={"escalated": False}), r).fired == ["not_escalated"]


@pytest.mark.parametrize("kind", ["router", "automation", "ai"])
def test_routers_and_automations_are_not_humans(kind: str) -> None:
    o = outcome(touches=[("bot:fin", "ai"), ("triage", kind)])
    assert apply_signal_rules(o, SHIPPED_STYLE).tier == "assumed"


def test_human_touch_makes_the_tier_assisted() -> None:
    o = outcome(touches=[("bot:fin", "ai"), ("alice", "human")])
    assert apply_signal_rules(o, SHIPPED_STYLE).tier == "assisted"


def test_human_touch_false_condition() -> None:
    r = rubric(
        {"id": "bot_only", "when": {"human_touch": False}, "effect": "tier", "tier": "confirmed"}
    )
    assert apply_signal_rules(outcome(touches=[("bot", "ai")]), r).tier == "confirmed"
    assert apply_signal_rules(outcome(touches=[("bob", "human")]), r).tier == "assumed"


def test_confirmed_tier_when_customer_confirms_without_human() -> None:
    o = outcome(signals={"customer_confirmed": True})
    assert apply_signal_rules(o, SHIPPED_STYLE).tier == "confirmed"


@pytest.mark.parametrize("order", [("human", "confirmed"), ("confirmed", "human")])
def test_assisted_wins_over_confirmed_in_any_file_order(order: tuple[str, str]) -> None:
    rules = {
        "human": {
            "id": "human",
            "when": {"human_touch": True},
            "effect": "tier",
            "tier": "assisted",
        },
        "confirmed": {
            "id": "confirmed",
            "when": {"customer_confirmed": True},
            "effect": "tier",
            "tier": "confirmed",
        },
    }
    r = rubric(*(rules[name] for name in order))
    o = outcome(signals={"customer_confirmed": True}, touches=[("alice", "human")])
    effects = apply_signal_rules(o, r)
    assert effects.tier == "assisted"
    assert effects.fired == list(order)


def test_later_tier_rules_apply_in_file_order() -> None:
    r = rubric(
        {"id": "a", "when": {"csat_at_least": 4}, "effect": "tier", "tier": "confirmed"},
        {"id": "b", "when": {"csat_at_least": 5}, "effect": "tier", "tier": "assumed"},
    )
    assert apply_signal_rules(outcome(signals={"csat": 4}), r).tier == "confirmed"
    assert apply_signal_rules(outcome(signals={"csat": 5}), r).tier == "assumed"


def test_several_vetoes_are_all_reported_in_rubric_order() -> None:
    o = outcome(
        signals={"closed_at": CLOSED, "reopened_at": CLOSED + timedelta(hours=1), "csat": 1}
    )
    effects = apply_signal_rules(o, SHIPPED_STYLE)
    assert effects.veto_reasons == ["reopened within 72 h", "CSAT 3 or below"]
    assert effects.fired == ["reopened", "low_csat"]


def test_pure_function_does_not_modify_the_outcome() -> None:
    o = outcome(signals={"csat": 2}, touches=[("alice", "human")])
    before = o.model_dump()
    apply_signal_rules(o, SHIPPED_STYLE)
    assert o.model_dump() == before


@pytest.mark.parametrize(
    ("human_at", "assisted"),
    [
        (CLOSED - timedelta(minutes=5), True),  # a person helped before the close
        (CLOSED, True),  # at the close still counts
        (CLOSED + timedelta(hours=2), False),  # a QA review after the close did not resolve it
        (None, True),  # untimed: assume it helped
    ],
)
def test_only_a_human_touch_before_resolution_makes_it_assisted(
    human_at: datetime | None, assisted: bool
) -> None:
    o = Outcome(
        id="T-2",
        kind="support_ticket",
        conversation=[Message(role="customer", text="where is my parcel?")],
        signals=Signals(closed_at=CLOSED),
        touches=[Touch(actor="bot:fin", kind="ai"), Touch(actor="qa", kind="human", at=human_at)],
    )
    assert (apply_signal_rules(o, SHIPPED_STYLE).tier == "assisted") is assisted
