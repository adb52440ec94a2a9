"""Layers 4-6 of the injection defence, each on its own, through litellm's real HTTP path.

- evidence: a passing judgment whose citations do not hold is unscored, never a pass;
- the ``guard`` judge: a yes flags the outcome, no usable answer keeps it from being verified,
  and its calls are recorded (pending first) and billed like every call;
- disagreement: a confident local not_verified against an LLM verified abstains.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from judge.engine import Engine
from judge.llm_judge import Backoff
from judge.models import Outcome
from judge.panel import Panel
from judge.protocols import MemoryCallStore
from judge.rubric_loader import load_rubric
from judge.verdict import FLAG_DISAGREEMENT, FLAG_GUARD_UNAVAILABLE, FLAG_INJECTION, JudgeCall
from tests.fakes.injection_corpus import sample_ticket
from tests.fakes.openai_server import (
    FakeOpenAIServer,
    Reply,
    cite,
    evidence_criteria,
    guard_reply,
    is_guard_request,
    passing_reply,
    passing_scores,
)

FAST = Backoff(initial=0.01, maximum=0.02, jitter=0.0, retry_after_cap=0.02)


class RecordingStore(MemoryCallStore):
    """A memory store that also keeps every write-ahead ``begin``."""

    def __init__(self) -> None:
        super().__init__()
        self.begun: list[JudgeCall] = []

    async def begin(self, call: JudgeCall, estimate: Callable[[], float] | None = None) -> None:
        await super().begin(call, estimate)
        self.begun.append(call.model_copy())


def _engine(server: FakeOpenAIServer, judges: list[dict[str, Any]], **panel: Any) -> Engine:
    for j in judges:
        if j.get("kind", "llm") in ("llm", "guard"):
            j.setdefault("api_base", server.base_url)
            j.setdefault("max_retries", 0)
            j.setdefault("backoff", FAST.__dict__)
    rubrics = {"support_ticket": load_rubric("support-resolution")}
    return Engine(Panel(judges=judges, **panel), rubrics, store=RecordingStore(), detector=None)


def _clean() -> Outcome:
    return Outcome.model_validate(sample_ticket("T-1001"))


def _citing(number: int) -> Any:
    """A passing judge that cites message ``number`` (its first words) for every criterion."""

    def respond(body: dict[str, Any]) -> Reply:
        if is_guard_request(body):
            return guard_reply(body)
        user = body["messages"][-1]["content"]
        block = user.split(f"<<<BEGIN message {number} ", 1)[1].split("\n", 1)[1]
        quote = " ".join(block.split())[:40]
        criteria: dict[str, Any] = {
            cid: {"score": s, "rationale": "ok"} for cid, s in passing_scores(body).items()
        }
        for cid in evidence_criteria(body):
            criteria[cid]["evidence"] = [{"message": number, "quote": quote}]
        return Reply.json({"criteria": criteria, "rationale": "ok"})

    return respond


def test_a_passing_judgment_citing_the_customer_verifies(server: FakeOpenAIServer) -> None:
    server.default = _citing(5)  # "oh right, Marcus added a seat. makes sense, thanks!"
    v = asyncio.run(_engine(server, [{"name": "j", "model": "openai/j"}]).verify(_clean()))
    assert v.decision == "verified", v.reasons
    assert v.judges[0].status == "ok"


def test_citing_the_agent_for_the_customers_state_is_unscored(server: FakeOpenAIServer) -> None:
    server.default = _citing(4)  # the agent's own account of what it did
    v = asyncio.run(_engine(server, [{"name": "j", "model": "openai/j"}]).verify(_clean()))
    judgment = v.judges[0]
    assert judgment.status == "unscored" and v.decision != "verified"
    assert "written by the agent" in (judgment.reason or "")


@pytest.mark.parametrize(
    ("evidence", "problem"),
    [
        ([], "no evidence cited"),
        ([{"message": 5, "quote": "the refund arrived, thank you"}], "is not in message 5"),
        ([{"message": 42, "quote": "makes sense, thanks"}], "does not exist"),
        ([{"message": 5, "quote": "thanks"}], "too short"),
        ([{"message": 0, "quote": "customer confirmed the resolution: False"}], "recorded signals"),
        # The name of a signal is shown whatever its value (red-team E1): it proves nothing.
        ([{"message": 0, "quote": "customer confirmed the resolution"}], "none of its values"),
        ([{"message": 0, "quote": "reopened at: unknown"}], "none of its values"),
    ],
)
def test_evidence_that_does_not_hold_is_unscored(
    server: FakeOpenAIServer, evidence: list[dict[str, Any]], problem: str
) -> None:
    def respond(body: dict[str, Any]) -> Reply:
        criteria: dict[str, Any] = {
            cid: {"score": s, "rationale": "ok", "evidence": evidence}
            for cid, s in passing_scores(body).items()
        }
        return Reply.json({"criteria": criteria, "rationale": "ok"})

    server.default = respond
    v = asyncio.run(_engine(server, [{"name": "j", "model": "openai/j"}]).verify(_clean()))
    assert v.judges[0].status == "unscored" and problem in (v.judges[0].reason or "")
    assert v.decision == "abstain"


def _citing_the_signal(*, except_last_word: bool) -> Any:
    """A passing judge citing the recorded confirmation for every criterion, and, when
    ``except_last_word``, the customer's last message for ``customer_not_failed``."""

    def respond(body: dict[str, Any]) -> Reply:
        signal = [{"message": 0, "quote": "customer confirmed the resolution: True"}]
        criteria: dict[str, Any] = {
            cid: {"score": s, "rationale": "ok", "evidence": signal}
            for cid, s in passing_scores(body).items()
        }
        if except_last_word:
            criteria["customer_not_failed"]["evidence"] = cite(body, "customer_last")
        return Reply.json({"criteria": criteria, "rationale": "ok"})

    return respond


def test_a_signal_is_evidence_of_the_customers_state(server: FakeOpenAIServer) -> None:
    server.default = _citing_the_signal(except_last_word=True)
    v = asyncio.run(_engine(server, [{"name": "j", "model": "openai/j"}]).verify(_clean()))
    assert v.decision == "verified", v.reasons


def test_when_the_customer_wrote_last_only_their_words_say_it_did_not_fail(
    server: FakeOpenAIServer,
) -> None:
    """A red-team pass: a gullible judge verified a ticket whose customer's last message was
    "Still nothing arrived. This is not fixed.", citing a tool result the billed party's
    integration wrote. Whether the customer signalled failure must cite what they said last."""
    outcome = _clean()
    assert outcome.conversation[-1].role == "customer"
    server.default = _citing_the_signal(except_last_word=False)
    v = asyncio.run(_engine(server, [{"name": "j", "model": "openai/j"}]).verify(outcome))
    assert v.judges[0].status == "unscored" and v.decision == "abstain"
    last = len(outcome.conversation)
    assert f"the customer wrote last (message {last})" in (v.judges[0].reason or "")


def test_the_guard_flags_and_is_recorded_and_billed_like_every_call(
    server: FakeOpenAIServer,
) -> None:
    def respond(body: dict[str, Any]) -> Reply:
        return guard_reply(body, attack=True) if is_guard_request(body) else passing_reply(body)

    server.default = respond
    engine = _engine(
        server, [{"name": "j", "model": "openai/j"}, {"kind": "guard", "model": "openai/g"}]
    )
    v = asyncio.run(engine.verify(_clean()))
    assert v.decision == "abstain" and FLAG_INJECTION in v.flags
    assert any(r.startswith("guard judge guard:") for r in v.reasons)
    guard = next(j for j in v.judges if j.kind == "guard")
    assert guard.decision is None and guard.scores["influences_evaluator"] == 1.0
    assert guard.tokens_in > 0 and guard.cost_usd >= 0
    store = engine.store
    assert isinstance(store, RecordingStore)
    guard_calls = [c for c in store.calls if c.judge == "guard"]
    assert len(guard_calls) == 1 and guard_calls[0].status == "ok"
    assert [c.call_id for c in store.begun if c.judge == "guard"] == [guard_calls[0].call_id]
    assert store.begun[0].status == "pending"
    # The guard's prompt is the same framed data, and never part of the vote or the criteria.
    guard_prompt = json.dumps(guard_calls[0].prompt)
    assert "influences_evaluator" in guard_prompt and "nonce=" in guard_prompt
    assert set(v.criteria) <= {c.id for c in load_rubric("support-resolution").criteria}


def test_a_clean_screen_lets_the_panel_decide(server: FakeOpenAIServer) -> None:
    engine = _engine(
        server, [{"name": "j", "model": "openai/j"}, {"kind": "guard", "model": "openai/g"}]
    )
    v = asyncio.run(engine.verify(_clean()))
    assert v.decision == "verified" and not v.flags, v.reasons


@pytest.mark.parametrize("reply", [Reply(content="I think it is fine."), Reply.error(500)])
def test_a_guard_without_a_usable_answer_never_lets_an_outcome_through(
    server: FakeOpenAIServer, reply: Reply
) -> None:
    def respond(body: dict[str, Any]) -> Reply:
        return reply if is_guard_request(body) else passing_reply(body)

    server.default = respond
    engine = _engine(
        server, [{"name": "j", "model": "openai/j"}, {"kind": "guard", "model": "openai/g"}]
    )
    v = asyncio.run(engine.verify(_clean()))
    assert v.decision == "abstain" and FLAG_GUARD_UNAVAILABLE in v.flags


def test_guard_judges_never_vote_or_sit_in_a_cascade() -> None:
    with pytest.raises(ValueError, match="at least one judge that votes"):
        Panel(judges=[{"kind": "guard", "model": "openai/g"}])
    with pytest.raises(ValueError, match="guard judges run beside the cascade"):
        Panel(
            judges=[{"kind": "signals"}, {"kind": "guard", "model": "openai/g"}],
            cascade=[{"judges": ["signals", "guard"]}],
        )
    with pytest.raises(ValueError):
        Panel(judges=[{"kind": "signals"}, {"kind": "guard", "model": "m", "weight": 1}])


def test_a_confident_local_no_against_an_llm_yes_abstains(server: FakeOpenAIServer) -> None:
    record = sample_ticket("T-1001")
    record["signals"] = {"csat": 2, "customer_confirmed": None}  # the signals judge says no
    outcome = Outcome.model_validate(record)
    # Majority of two LLM yes against one signals no: verified without the disagreement rule.
    judges = [
        {"name": "a", "model": "openai/a"},
        {"name": "b", "model": "openai/b"},
        {"kind": "signals"},
    ]
    rubric = load_rubric("support-resolution").model_copy(update={"signals": []})
    engine = _engine(server, judges)
    engine.rubrics = {"support_ticket": rubric}
    v = asyncio.run(engine.verify(outcome))
    assert v.decision == "abstain" and FLAG_DISAGREEMENT in v.flags
    assert any("judges disagree: signals" in r for r in v.reasons)
    # Below the configured confidence the rule stays quiet.
    engine = _engine(server, judges, disagreement_confidence=0.99)
    engine.rubrics = {"support_ticket": rubric}
    assert asyncio.run(engine.verify(outcome)).decision == "verified"
