"""Attribution: the last substantive AI actor before resolution; routers never get credit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from judge.importers import read_outcomes
from judge.models import Outcome
from ledger.attribution import attribute

TICKETS = Path(__file__).resolve().parents[2] / "datasets" / "tickets.jsonl"


def outcome(touches: list[dict[str, Any]], agent: str | None = None, **signals: Any) -> Outcome:
    return Outcome.model_validate(
        {
            "id": "T-1",
            "kind": "support_ticket",
            "conversation": [{"role": "customer", "text": "hi"}],
            "touches": touches,
            "signals": signals,
            "agent": {"name": agent},
        }
    )


def test_last_ai_touch_before_closed_at_gets_the_credit() -> None:
    o = outcome(
        [
            {"actor": "router:triage", "kind": "router", "at": "2026-03-01T10:00:00Z"},
            {"actor": "bot:first", "kind": "ai", "at": "2026-03-01T10:01:00Z"},
            {"actor": "bot:fin", "kind": "ai", "at": "2026-03-01T11:00:00Z"},  # at closed_at
            {"actor": "bot:late", "kind": "ai", "at": "2026-03-01T12:00:00Z"},  # after
            {"actor": "csat-survey", "kind": "automation", "at": "2026-03-01T13:00:00Z"},
        ],
        closed_at="2026-03-01T11:00:00Z",
    )
    assert attribute(o) == "bot:fin"


def test_without_closed_at_the_last_ai_touch_wins_by_time_else_by_order() -> None:
    timed = [
        {"actor": "bot:b", "kind": "ai", "at": "2026-03-01T12:00:00Z"},
        {"actor": "bot:a", "kind": "ai", "at": "2026-03-01T10:00:00Z"},
        {"actor": "alice", "kind": "human", "at": "2026-03-01T13:00:00Z"},
    ]
    assert attribute(outcome(timed)) == "bot:b"  # by time, not list order
    untimed = [{"actor": "bot:b", "kind": "ai"}, {"actor": "bot:a", "kind": "ai"}]
    assert attribute(outcome(untimed)) == "bot:a"  # recorded order
    # naive and aware times compare (naive = UTC)
    mixed = [
        {"actor": "bot:aware", "kind": "ai", "at": "2026-03-01T10:00:00+00:00"},
        {"actor": "bot:naive", "kind": "ai", "at": "2026-03-01T10:30:00"},
    ]
    assert attribute(outcome(mixed, closed_at="2026-03-01T11:00:00+01:00")) == "bot:aware"


def test_routers_automations_and_humans_get_no_credit() -> None:
    touches = [
        {"actor": "router:triage", "kind": "router"},
        {"actor": "csat-survey", "kind": "automation"},
        {"actor": "alice", "kind": "human"},
    ]
    assert attribute(outcome(touches, agent="fin")) is None
    only_after = [{"actor": "bot:fin", "kind": "ai", "at": "2026-03-02T00:00:00Z"}]
    assert attribute(outcome(only_after, closed_at="2026-03-01T00:00:00Z")) is None


def test_no_touches_falls_back_to_the_agent_name() -> None:
    assert attribute(outcome([], agent="fin")) == "fin"
    assert attribute(outcome([])) is None


def test_shipped_tickets_credit_the_bot_never_the_router() -> None:
    outcomes = list(read_outcomes(TICKETS))
    routed = [o for o in outcomes if any(t.kind == "router" for t in o.touches)]
    assert len(routed) >= 10
    for o in outcomes:
        credited = attribute(o)
        assert credited != "router:triage", o.id
        ai = [t.actor for t in o.touches if t.kind == "ai"]
        assert credited in ai, o.id  # every shipped ticket has an AI touch before closing
    assert {attribute(o) for o in routed} == {"bot:fin"}
