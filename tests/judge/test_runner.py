"""The one verification pipeline (judge verify and the job worker): order, resume, errors."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from judge.engine import Engine
from judge.models import Outcome
from judge.rubric import Rubric
from judge.runner import Request, RunSummary, verify_requests, verify_stream
from judge.verdict import Judgment, Verdict
from tests.judge.test_engine import ScriptedJudge, make_engine


class SlowJudge(ScriptedJudge):
    """Verified after a delay that shrinks with the outcome's number (later ones finish first)."""

    in_flight = 0
    most_in_flight = 0

    async def __call__(self, outcome: Outcome, rubric: Rubric) -> Judgment:
        SlowJudge.in_flight += 1
        SlowJudge.most_in_flight = max(SlowJudge.most_in_flight, SlowJudge.in_flight)
        try:
            await asyncio.sleep(0.002 * (20 - int(outcome.id.split("-")[1])))
            return await super().__call__(outcome, rubric)
        finally:
            SlowJudge.in_flight -= 1


def ticket(number: int, kind: str = "support_ticket") -> Outcome:
    conversation = [
        {"role": "customer", "text": f"Order {number} is missing."},
        {"role": "agent", "text": f"I re-shipped order {number}; tracking TRK-{number}."},
    ]
    if kind == "report":
        return Outcome.model_validate(
            {
                "id": f"R-{number}",
                "kind": "report",
                "report": {"brief": "Q3 revenue summary.", "text": "Revenue rose 4%."},
            }
        )
    return Outcome.model_validate({"id": f"T-{number}", "kind": kind, "conversation": conversation})


def _collect(
    requests: list[Request[Any]], **kwargs: Any
) -> tuple[list[tuple[str, str, bool]], RunSummary]:
    seen: list[tuple[str, str, bool]] = []

    async def sink(request: Request[Any], verdict: Verdict, resumed: bool) -> None:
        seen.append((request.outcome.id, verdict.decision, resumed))

    summary = asyncio.run(verify_requests(requests, sink=sink, **kwargs))
    return seen, summary


def test_results_reach_the_sink_in_input_order_within_the_concurrency_bound() -> None:
    SlowJudge.most_in_flight = 0
    engine = make_engine([SlowJudge("slow", "verified")])
    requests = [Request(ticket(i), engine, i) for i in range(12)]
    seen, summary = _collect(requests, concurrency=3)
    assert [outcome_id for outcome_id, _, _ in seen] == [f"T-{i}" for i in range(12)]
    assert 1 < SlowJudge.most_in_flight <= 3
    assert summary.outcomes == summary.verified == 12
    assert summary.judge_cost_usd == pytest.approx(12 * 0.001)


def test_each_request_is_judged_by_its_own_engine() -> None:
    yes = make_engine([ScriptedJudge("a", "verified")])
    no = make_engine([ScriptedJudge("a", "not_verified")])
    seen, summary = _collect(
        [Request(ticket(0), yes, "job-1"), Request(ticket(0), no, "job-2")], concurrency=2
    )
    assert [decision for _, decision, _ in seen] == ["verified", "not_verified"]
    assert summary.decisions == {"verified": 1, "not_verified": 1}


def test_a_recorded_verdict_is_reused_not_judged_again_and_costs_nothing() -> None:
    judge = ScriptedJudge("a", "verified")
    engine = make_engine([judge])
    recorded = asyncio.run(engine.verify(ticket(1)))
    judge.calls = 0

    async def lookup(request: Request[Any]) -> Verdict | None:
        return recorded if request.outcome.id == "T-1" else None

    seen, summary = _collect(
        [Request(ticket(i), engine, i) for i in range(3)], lookup=lookup, concurrency=2
    )
    assert seen == [
        ("T-0", "verified", False),
        ("T-1", "verified", True),
        ("T-2", "verified", False),
    ]
    assert judge.calls == 2
    assert summary.resumed == 1 and summary.outcomes == 3
    assert summary.judge_cost_usd == pytest.approx(2 * 0.001)


def test_a_failed_request_goes_to_on_error_and_the_run_goes_on() -> None:
    engine = make_engine([ScriptedJudge("a", "verified")])  # no rubric for reports
    failures: list[tuple[str, str]] = []
    seen, summary = _collect(
        [
            Request(ticket(0), engine, 0),
            Request(ticket(1, "report"), engine, 1),
            Request(ticket(2), engine, 2),
        ],
        on_error=lambda request, exc: failures.append((request.outcome.id, str(exc))),
    )
    assert [outcome_id for outcome_id, _, _ in seen] == ["T-0", "T-2"]
    assert summary.outcomes == 2
    [(failed_id, message)] = failures
    assert failed_id == "R-1" and "no rubric for that kind" in message


def test_without_on_error_a_failure_stops_the_run() -> None:
    engine = make_engine([ScriptedJudge("a", "verified")])
    with pytest.raises(ValueError, match="no rubric for that kind"):
        _collect([Request(ticket(0), engine, 0), Request(ticket(1, "report"), engine, 1)])


def test_a_summary_passed_in_accumulates_across_runs() -> None:
    engine = make_engine([ScriptedJudge("a", "verified")])
    summary = RunSummary()
    for start in (0, 5):
        _collect([Request(ticket(i), engine, i) for i in range(start, start + 5)], summary=summary)
    assert summary.outcomes == 10 and summary.verified == 10
    assert summary.to_dict()["outcomes"] == 10 and summary.verify_seconds > 0


def test_verify_stream_is_the_same_pipeline_with_one_engine() -> None:
    engine: Engine = make_engine([ScriptedJudge("a", "verified")])
    got: list[str] = []

    async def sink(outcome: Outcome, verdict: Verdict, resumed: bool) -> None:
        got.append(outcome.id)

    summary = asyncio.run(verify_stream(engine, [ticket(i) for i in range(4)], sink=sink))
    assert got == ["T-0", "T-1", "T-2", "T-3"] and summary.verified == 4
    with pytest.raises(ValueError, match="concurrency must be at least 1"):
        asyncio.run(verify_stream(engine, [], sink=sink, concurrency=0))


def test_an_async_source_that_waits_holds_up_no_result_and_unordered_is_as_ready() -> None:
    """A worker's source waits for more work: results must keep reaching the sink meanwhile;
    unordered, the quick ones do not wait behind the slow one."""
    SlowJudge.most_in_flight = 0
    engine = make_engine([SlowJudge("slow", "verified")])
    seen: list[str] = []
    more = asyncio.Event()

    async def source() -> Any:
        for i in (0, 15, 16):  # T-0 is the slowest (40 ms), T-16 the quickest
            yield Request(ticket(i), engine, i)
        await more.wait()  # no more work until every result so far is in
        yield Request(ticket(19), engine, 19)

    async def sink(request: Request[Any], verdict: Verdict, resumed: bool) -> None:
        seen.append(request.outcome.id)
        if len(seen) == 3:
            more.set()

    summary = asyncio.run(
        asyncio.wait_for(
            verify_requests(source(), sink=sink, concurrency=4, ordered=False), timeout=10
        )
    )
    # T-15 and T-16 finish 2 ms apart, which a loaded machine can swap; T-0 is 30 ms behind.
    assert set(seen[:2]) == {"T-15", "T-16"} and seen[2:] == ["T-0", "T-19"]
    assert summary.outcomes == 4


def test_a_failing_source_stops_the_run_with_its_error() -> None:
    engine = make_engine([ScriptedJudge("a", "verified")])

    async def source() -> Any:
        yield Request(ticket(0), engine, 0)
        raise RuntimeError("the queue went away")

    async def sink(request: Request[Any], verdict: Verdict, resumed: bool) -> None:
        return None

    with pytest.raises(RuntimeError, match="the queue went away"):
        asyncio.run(verify_requests(source(), sink=sink))


def test_summaries_of_processes_side_by_side_merge() -> None:
    engine = make_engine([ScriptedJudge("a", "verified")])
    _, first = _collect([Request(ticket(i), engine, i) for i in range(3)])
    _, second = _collect([Request(ticket(i), engine, i) for i in range(3, 5)])
    longest = max(first.verify_seconds, second.verify_seconds)
    first.merge(second)
    assert (first.outcomes, first.verified) == (5, 5)
    assert first.judge_cost_usd == pytest.approx(5 * 0.001)
    assert first.verify_seconds == longest  # they ran at the same time
