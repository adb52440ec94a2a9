"""Prose judge replies: a criterion the reply never mentions is missing, never scored.

With several criteria, a number only counts for a criterion inside the part of the reply about
that criterion. A stray number elsewhere ("fixed 1 issue", "5 stars") must not become the score
of a criterion the judge never talked about: such a reply is unscored, and so never a pass.
"""

from __future__ import annotations

import asyncio

import pytest

from judge.reply_parsing import parse_reply
from judge.rubric import Criterion, Rubric
from tests.fakes.openai_server import FakeOpenAIServer, Reply
from tests.judge.test_llm_judge import KEY_ENV, OUTCOME, RUBRIC, SECRET, make_judge

# RUBRIC: request_understood (binary gate, 0..1) and helpfulness (1..5).
NEVER = "(the reply never mentions it)"

PROSE = [
    pytest.param(
        "Request understood: yes, 1. It took 2 replies over 3 days and the customer left 5 stars.",
        {"request_understood": 1.0},
        ["helpfulness"],
        id="stray-numbers-in-scale-after-the-scored-criterion",
    ),
    pytest.param(
        "The agent fixed 1 issue. Helpfulness: 4",
        {"helpfulness": 4.0},
        ["request_understood"],
        id="stray-number-in-an-earlier-sentence",
    ),
    pytest.param(
        "Request understood: 1\n\nOverall: 5/5, a great job.",
        {"request_understood": 1.0},
        ["helpfulness"],
        id="overall-rating-is-not-a-criterion",
    ),
    pytest.param(
        "The agent was helpful and understood the request. Request understood: 1. Tone: 4 of 5.",
        {"request_understood": 1.0},
        ["helpfulness"],
        id="mentioned-only-by-an-unrelated-word",
    ),
    pytest.param(
        "The agent fixed 1 issue. Helpful: 4",
        {},
        ["request_understood", "helpfulness"],
        id="neither-criterion-named",
    ),
    pytest.param(
        "Understood: 1. Helpful: 5.",
        {},
        ["request_understood", "helpfulness"],
        id="partial-names-are-not-mentions",
    ),
]


@pytest.mark.parametrize(("reply", "scored", "missing"), PROSE)
def test_an_unmentioned_criterion_gets_no_score_from_stray_numbers(
    reply: str, scored: dict[str, float], missing: list[str]
) -> None:
    parsed = parse_reply(reply, RUBRIC)
    assert parsed.format == "text"
    assert parsed.scores == scored
    for criterion in missing:
        lo, hi = next(c.bounds for c in RUBRIC.criteria if c.id == criterion)
        assert f"no score in [{lo:g}, {hi:g}] for criterion '{criterion}' {NEVER}" in (
            parsed.problems
        )
    assert len(parsed.problems) == len(missing)


@pytest.mark.parametrize(("reply", "scored", "missing"), PROSE)
def test_a_prose_reply_missing_a_criterion_is_unscored_never_verified(
    fake_llm: FakeOpenAIServer,
    monkeypatch: pytest.MonkeyPatch,
    reply: str,
    scored: object,
    missing: list[str],
) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    fake_llm.enqueue("gpt-4o-mini", Reply(content=reply))
    judge, _ = make_judge(fake_llm)
    j = asyncio.run(judge(OUTCOME, RUBRIC))
    assert (j.status, j.decision, j.p_verified) == ("unscored", None, None)
    assert j.scores == {} and not j.counts
    assert j.reason is not None and all(f"'{c}' {NEVER}" in j.reason for c in missing)


def test_a_single_criterion_rubric_still_reads_an_unlabelled_score() -> None:
    """With one criterion there is nothing to confuse: the reply's last in-scale number counts."""
    one = Rubric(name="one", kind="report", criteria=[Criterion(id="accurate", question="OK?")])
    assert parse_reply("I checked 3 sources; all agree. Verdict: 1", one).scores == {
        "accurate": 1.0
    }
    assert parse_reply("I checked 3 sources.", one).scores == {}


@pytest.mark.parametrize(
    ("message", "kept"),
    [
        ("3", [3]),
        (" 12 ", [12]),
        (4, [4]),
        ("²", []),  # str.isdigit() says yes; int() raised
        ("٣", []),  # an Arabic-Indic digit: not a message number either
        ("9" * 5000, []),  # past int()'s digit limit: raised
        (True, []),
        (2.0, []),
    ],
)
def test_a_citation_number_the_engine_cannot_read_is_dropped_not_raised(
    message: object, kept: list[int]
) -> None:
    import json

    rubric = Rubric(name="r", kind="support_ticket", criteria=[Criterion(id="ok", question="?")])
    cite = {"message": message, "quote": "a verbatim quote"}
    reply = json.dumps({"criteria": {"ok": {"score": 1, "rationale": "", "evidence": [cite]}}})
    parsed = parse_reply(reply, rubric)
    assert parsed.scores == {"ok": 1.0}
    assert [c.message for c in parsed.evidence.get("ok", [])] == kept
