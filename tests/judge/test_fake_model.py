"""The LLM judge against the in-process fake model (a reply queue): no server, no sockets."""

from __future__ import annotations

import asyncio

from judge.limits import ProviderLimiter
from judge.llm_judge import Backoff, LLMJudge
from judge.panel import LLMJudgeSpec
from judge.protocols import MemoryCallStore
from tests.fakes.fake_model import FakeModel, ProviderError
from tests.judge.test_llm_judge import OUTCOME, RUBRIC

FAST = Backoff(initial=0.01, maximum=0.02, jitter=0.0, retry_after_cap=0.02)
PASSING = {
    "criteria": {
        "request_understood": {"score": 1, "rationale": "Understood."},
        "helpfulness": {"score": 5, "rationale": "Helpful."},
    },
    "rationale": "Solid resolution.",
}


def _judge() -> tuple[LLMJudge, MemoryCallStore]:
    store = MemoryCallStore()
    spec = LLMJudgeSpec(name="queue", model="fake/queue-model", max_retries=2, timeout=5)
    judge = LLMJudge(spec, store=store, limiter=ProviderLimiter(default=4), backoff=FAST)
    return judge, store


def test_a_queued_reply_is_the_judgment_and_every_call_is_recorded(fake_model: FakeModel) -> None:
    fake_model.enqueue(PASSING)
    judge, store = _judge()
    judgment = asyncio.run(judge(OUTCOME, RUBRIC))
    assert judgment.status == "ok" and judgment.scores["helpfulness"] == 5
    (request,) = fake_model.requests
    assert request["model"] == "fake/queue-model"
    assert "My order #123 never arrived." in request["messages"][-1]["content"]
    (call,) = store.calls
    assert call.status == "ok" and call.reply and call.cost_usd == fake_model.cost_usd


def test_an_unparseable_reply_is_unscored_with_a_reason(fake_model: FakeModel) -> None:
    fake_model.enqueue("I think it went fine overall.")
    judge, _ = _judge()
    judgment = asyncio.run(judge(OUTCOME, RUBRIC))
    assert judgment.status == "unscored"
    assert judgment.reason and judgment.decision != "not_verified"


def test_a_provider_error_is_retried_and_each_attempt_recorded(fake_model: FakeModel) -> None:
    fake_model.enqueue(ProviderError(503), PASSING)
    judge, store = _judge()
    judgment = asyncio.run(judge(OUTCOME, RUBRIC))
    assert judgment.status == "ok"
    assert [c.status for c in store.calls] == ["error", "ok"]
    assert len(fake_model.requests) == 2


def test_a_client_error_is_not_retried(fake_model: FakeModel) -> None:
    fake_model.enqueue(ProviderError(400, "bad request"))
    judge, store = _judge()
    judgment = asyncio.run(judge(OUTCOME, RUBRIC))
    assert judgment.status == "error" and len(fake_model.requests) == 1
    assert [c.status for c in store.calls] == ["error"]


def test_pairwise_comparisons_keep_the_shared_provider_cap(fake_model: FakeModel) -> None:
    """The position probe's comparisons go through the model client and wait for the same
    per-provider slots as every judge."""
    from judge.pairwise import PairwiseJudge

    fake_model.default, fake_model.latency = '"A"', 0.05
    spec = LLMJudgeSpec(name="cmp", model="fake/queue-model", timeout=5)
    judge = PairwiseJudge(spec, concurrency=8, limiter=ProviderLimiter(default=2), backoff=FAST)

    async def compare_many() -> list[str]:
        return list(await asyncio.gather(*(judge.compare(f"a{i}", f"b{i}") for i in range(6))))

    assert asyncio.run(compare_many()) == ["A"] * 6
    assert len(fake_model.requests) == 6 and judge.calls == 6
    assert fake_model.max_in_flight == 2


def test_a_pairwise_comparison_records_every_attempt_in_its_store(fake_model: FakeModel) -> None:
    from judge.pairwise import PairwiseJudge

    fake_model.enqueue(ProviderError(503), '"B"')
    store = MemoryCallStore()
    spec = LLMJudgeSpec(name="cmp", model="fake/queue-model", max_retries=2, timeout=5)
    judge = PairwiseJudge(spec, store=store, backoff=FAST)
    assert asyncio.run(judge.compare("first", "second", record_as="pair-7:ab")) == "B"
    failed, answered = store.calls
    assert (failed.status, answered.status) == ("error", "ok")
    assert (failed.attempt, answered.attempt) == (1, 2)
    assert {c.outcome_id for c in store.calls} == {"pair-7:ab"}
    assert answered.reply == '"B"' and answered.prompt[-1]["content"].count("second") == 1
    assert judge.calls == 1
