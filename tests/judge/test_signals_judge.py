"""The deterministic signals judge."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from judge.local.signals import SignalsJudge
from judge.models import Message, Outcome, Signals
from judge.panel import SignalsJudgeSpec
from judge.protocols import Judge
from judge.rubric import Criterion, Rubric
from judge.verdict import Judgment

CLOSED = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
RUBRIC = Rubric(
    name="support-test",
    kind="support_ticket",
    criteria=[Criterion(id="resolved", question="Was it resolved?")],
    window_hours=72,
)


def judge_signals(**signals: Any) -> Judgment:
    o = Outcome(
        id="T-7",
        kind="support_ticket",
        conversation=[Message(role="customer", text="hi"), Message(role="agent", text="done")],
        signals=Signals(**signals),
    )
    judge = SignalsJudge(SignalsJudgeSpec(kind="signals", name="sig", weight=2.0))
    return asyncio.run(judge(o, RUBRIC))


def test_implements_the_judge_protocol() -> None:
    judge = SignalsJudge(SignalsJudgeSpec(kind="signals", name="sig", weight=2.0))
    assert isinstance(judge, Judge)
    assert (judge.name, judge.weight) == ("sig", 2.0)


@pytest.mark.parametrize(
    ("signals", "mentions"),
    [
        ({"escalated": True}, "escalated"),
        ({"csat": 3}, "CSAT 3"),
        ({"csat": 1}, "CSAT 1"),
        ({"customer_confirmed": False}, "not resolved"),
        ({"closed_at": CLOSED, "reopened_at": CLOSED + timedelta(hours=2)}, "reopened"),
        ({"closed_at": CLOSED, "recontact_at": CLOSED + timedelta(hours=2)}, "came back"),
        ({"reopened_at": CLOSED}, "reopened"),  # no reference time: a reopen still counts
    ],
)
def test_failure_signals_give_a_confident_not_verified(
    signals: dict[str, Any], mentions: str
) -> None:
    j = judge_signals(**signals)
    assert j.status == "ok" and j.decision == "not_verified" and j.counts
    assert j.p_verified is not None and j.p_verified <= 0.1
    assert mentions in j.rationale


@pytest.mark.parametrize(
    "signals", [{"customer_confirmed": True}, {"csat": 4}, {"csat": 5, "escalated": False}]
)
def test_success_signals_give_verified(signals: dict[str, Any]) -> None:
    j = judge_signals(**signals)
    assert j.decision == "verified" and j.counts
    assert j.p_verified is not None and j.p_verified > 0.5


def test_explicit_confirmation_is_stronger_evidence_than_csat_alone() -> None:
    confirmed = judge_signals(customer_confirmed=True).p_verified
    happy = judge_signals(csat=5).p_verified
    assert confirmed is not None and happy is not None and confirmed > happy


@pytest.mark.parametrize(
    "signals",
    [
        {"customer_confirmed": True, "escalated": True},
        {"csat": 5, "closed_at": CLOSED, "reopened_at": CLOSED + timedelta(hours=1)},
        {"customer_confirmed": True, "csat": 2},
    ],
)
def test_failure_outweighs_success(signals: dict[str, Any]) -> None:
    j = judge_signals(**signals)
    assert j.decision == "not_verified"
    assert "outweigh" in j.rationale


def test_no_decisive_signal_abstains_and_does_not_vote() -> None:
    j = judge_signals(escalated=False)
    assert j.status == "ok"
    assert j.decision == "abstain"
    assert j.p_verified == 0.5
    assert not j.counts


def test_reopen_outside_the_rubric_window_is_a_new_issue() -> None:
    j = judge_signals(closed_at=CLOSED, reopened_at=CLOSED + timedelta(days=10))
    assert j.decision == "abstain"


def test_record_shape() -> None:
    j = judge_signals(csat=5)
    assert j.judge == "sig"
    assert j.model == "local:signals"
    assert j.kind == "signals"
    assert j.cost_usd == 0.0
    assert j.tokens_in == 0 and j.tokens_out == 0
    assert "CSAT 5" in j.rationale


def test_deterministic() -> None:
    a = judge_signals(csat=2, customer_confirmed=True)
    b = judge_signals(csat=2, customer_confirmed=True)
    assert a.model_dump() == b.model_dump()


def test_success_signals_do_not_verify_a_report_but_failures_still_count() -> None:
    # Red-team R1: the default panel verified a report with wrong figures on a submitted
    # customer_confirmed / CSAT 5; the report rubric reads its sources, not the customer.
    def judged(**signals: Any) -> Judgment:
        report = Outcome.model_validate(
            {
                "id": "R-1",
                "kind": "report",
                "report": {
                    "brief": "b",
                    "text": "12,400 tickets [s1]",
                    "sources": [{"id": "s1", "text": "total 12,040"}],
                },
                "signals": signals,
            }
        )
        judge = SignalsJudge(SignalsJudgeSpec(kind="signals", name="sig"))
        return asyncio.run(judge(report, RUBRIC))

    confirmed = judged(customer_confirmed=True, csat=5)
    assert confirmed.decision == "abstain" and not confirmed.counts
    assert "do not verify a report" in confirmed.rationale
    assert judged(escalated=True).decision == "not_verified"
