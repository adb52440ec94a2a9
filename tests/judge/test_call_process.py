"""Model calls made in a process of their own (:mod:`judge.call_process`), through litellm's real
HTTP path against the local fake OpenAI server: the same calls, errors, retries and records as
calls made in the engine's process, and no call lost when the child dies."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from judge import model_client
from judge.call_process import CallProcess, RemoteCallError
from judge.llm_judge import Backoff, public_reason
from judge.models import Message, Outcome
from judge.protocols import MemoryCallStore
from judge.rubric_loader import load_rubric
from judge.verdict import Judgment
from tests.fakes.openai_server import FakeOpenAIServer, Reply
from tests.judge.test_cli_verify import TICKETS, judge_cli, write_panel
from tests.judge.test_llm_judge import KEY_ENV, make_judge
from tests.process_tools import children_of_killed_parent

FAST = Backoff(initial=0.01, maximum=0.05, jitter=0.0, retry_after_cap=5)
RUBRIC = load_rubric("support-resolution")
OUTCOME = Outcome(
    id="T-1",
    kind="support_ticket",
    conversation=[
        Message(role="customer", text="My order #123 never arrived."),
        Message(role="agent", text="I've sent a replacement; it arrives Friday."),
        Message(role="customer", text="Got it, thanks!"),
    ],
)


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-calls-test")


@asynccontextmanager
async def call_process() -> AsyncIterator[CallProcess]:
    calls = CallProcess()
    calls.spawn()
    try:
        await calls.ready()
        with model_client.using(calls.acompletion):
            yield calls
    finally:
        await calls.close()


def request(api_base: str, **options: Any) -> dict[str, Any]:
    """The keyword arguments of one ``acompletion`` call to ``api_base``."""
    return {
        "model": "openai/gpt-4o-mini",
        "api_base": api_base,
        "api_key": "sk-x",
        "messages": [{"role": "user", "content": "hi"}],
        "num_retries": 0,
        **options,
    }


def _error_class(text: str | None) -> str | None:
    return None if text is None else text.split(":", 1)[0]


#: (name, replies queued for gpt-4o-mini, replies for gpt-4o, judge options)
SCENARIOS: list[tuple[str, list[Reply], list[Reply], dict[str, Any]]] = [
    ("429 with retry-after, then a reply", [Reply.error(429, retry_after=0.3)], [], {}),
    ("5xx beyond the retries, then the fallback", [Reply.error(500)] * 2 + [Reply.error(503)],
     [Reply()], {"fallbacks": ["openai/gpt-4o"]}),
    ("400 is not retried", [Reply.error(400)], [], {}),
    ("a timeout, then a reply", [Reply(hang=30)], [], {"timeout": 0.5, "max_retries": 1}),
    ("bad bodies are retried", [Reply(malformed=True), Reply(content="x" * 300, truncated=True),
     Reply(reset=True)], [], {"max_retries": 3}),
]  # fmt: skip


async def _scenario(
    server: FakeOpenAIServer, queued: list[Reply], fallback: list[Reply], options: dict[str, Any]
) -> tuple[Judgment, MemoryCallStore, list[float]]:
    server.reset()
    if queued:
        server.enqueue("gpt-4o-mini", *queued)
    if fallback:
        server.enqueue("gpt-4o", *fallback)
    judge, store = make_judge(server, backoff=FAST, **options)
    judgment = await judge(OUTCOME, RUBRIC)
    return judgment, store, [r.time for r in server.chat_requests()]


def _seen(judgment: Judgment, store: MemoryCallStore) -> dict[str, Any]:
    return {
        "judgment": judgment.model_dump(include={"status", "decision", "scores", "model"}),
        "reason": judgment.reason,
        "tokens": (judgment.tokens_in, judgment.tokens_out),
        "cost": round(judgment.cost_usd, 12),
        "calls": [
            (c.model, c.attempt, c.status, _error_class(c.error), c.tokens_in, c.cost_usd)
            for c in store.calls
        ],
    }


def test_calls_through_the_call_process_are_those_made_in_the_engine_process(
    server: FakeOpenAIServer,
) -> None:
    """Replies, usage and cost, and every failure path (429 with its wait, 5xx then a fallback,
    a 400 that is not retried, a timeout, bodies that do not parse): the judgment and each call
    the store records are the same whichever process made the call."""

    async def run_all(route: Callable[[], Any]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with route() as calls:
            for name, queued, fallback, options in SCENARIOS:
                judgment, store, times = await _scenario(server, queued, fallback, options)
                seen[name] = _seen(judgment, store)
                if name.startswith("429"):
                    seen["429 wait"] = times[1] - times[0] >= 0.29
            seen["child alive"] = calls is None or not calls.broken
        return seen

    @asynccontextmanager
    async def here() -> AsyncIterator[None]:
        yield None

    in_process = asyncio.run(run_all(here))
    in_child = asyncio.run(run_all(call_process))
    assert in_child == in_process
    assert in_child["child alive"] and in_child["429 wait"]
    calls = in_child["429 with retry-after, then a reply"]["calls"]
    assert [c[2:4] for c in calls] == [("error", "RateLimitError"), ("ok", None)]
    assert calls[1][4] > 0 and calls[1][5] > 0  # tokens and a price came back
    assert in_child["400 is not retried"]["judgment"]["status"] == "error"
    assert "BadRequestError" in (in_child["400 is not retried"]["reason"] or "")
    fallback = in_child["5xx beyond the retries, then the fallback"]
    assert fallback["judgment"]["model"] == "openai/gpt-4o"
    assert [c[3] for c in in_child["a timeout, then a reply"]["calls"]] == ["Timeout", None]


def test_a_provider_that_cannot_be_reached_reads_the_same(server: FakeOpenAIServer) -> None:
    """A refused connection: the error that comes back is retried like the one raised here
    (same class name, status and transience), and its public reason is the same."""
    closed = f"http://127.0.0.1:{_closed_port()}/v1"

    async def fail(route: bool) -> BaseException:
        kwargs = request(closed, timeout=5)
        if not route:
            with pytest.raises(Exception) as here:
                await model_client.acompletion(**kwargs)
            return here.value
        async with call_process():
            with pytest.raises(RemoteCallError) as there:
                await model_client.acompletion(**kwargs)
            return there.value

    here, there = asyncio.run(fail(False)), asyncio.run(fail(True))
    assert type(there).__name__ == type(here).__name__
    assert public_reason(there) == public_reason(here)
    assert "could not connect" in public_reason(there)
    # What the judge's retry rule reads: litellm's transient classes and the HTTP status.
    assert model_client.is_transient(there) == model_client.is_transient(here)
    assert getattr(there, "status_code", None) == getattr(here, "status_code", None)


def test_a_cancelled_call_is_cancelled_in_the_child_too(server: FakeOpenAIServer) -> None:
    """A caller that stops waiting (a deadline of its own) is released at once; the child takes
    the next call at once and, closed, ends at once without waiting for the hung provider."""
    server.enqueue("gpt-4o-mini", Reply(hang=60))
    kwargs = request(server.base_url, timeout=120)

    async def run() -> tuple[str, float]:
        async with call_process() as calls:
            hung = asyncio.create_task(calls.acompletion(**kwargs))
            # Cancel once the call is at the provider: on a loaded machine the child took over
            # 0.5 s to send it, the cancel came first, and the next call got the hung reply.
            deadline = time.monotonic() + 30
            while not server.chat_requests() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert server.chat_requests(), "the first call never reached the provider"
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(hung, 0.5)
            reply = await calls.acompletion(**kwargs)
            started = time.perf_counter()
        return reply.choices[0].message.content, time.perf_counter() - started

    content, closing = asyncio.run(run())
    assert content  # the server's default reply came back
    assert closing < 5  # the hung call (60 s) did not hold the child open


def test_a_killed_call_process_fails_calls_in_flight_and_later_calls_run_here(
    server: FakeOpenAIServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The child killed during a call: that call fails as a lost connection (transient, so the
    judge retries it), a warning says so, and every later call is made in this process."""
    server.enqueue("gpt-4o-mini", Reply(delay=5))
    kwargs = request(server.base_url, timeout=30)

    async def run() -> tuple[BaseException | None, Any, bool]:
        async with call_process() as calls:
            in_flight = asyncio.create_task(calls.acompletion(**kwargs))
            while not server.chat_requests():
                await asyncio.sleep(0.05)
            assert calls.pid is not None
            os.kill(calls.pid, signal.SIGKILL)
            lost = await asyncio.gather(in_flight, return_exceptions=True)
            later = await calls.acompletion(**kwargs)
            return lost[0], later, calls.broken

    with caplog.at_level(logging.WARNING, logger="judge.call_process"):
        lost, later, broken = asyncio.run(run())
    assert isinstance(lost, RemoteCallError) and model_client.is_transient(lost)
    assert "could not connect" in public_reason(lost)
    assert broken and later.choices[0].message.content
    assert any("model-call process stopped" in r.getMessage() for r in caplog.records)
    assert len(server.chat_requests()) == 2


def test_an_option_that_cannot_cross_processes_is_sent_from_here(
    server: FakeOpenAIServer,
) -> None:
    """litellm options from a panel are plain data; anything else (here a lock in ``metadata``)
    cannot be sent to the child, and that call is made in this process instead of failing."""
    kwargs = request(server.base_url, metadata={"lock": threading.Lock()})

    async def run() -> tuple[str, bool]:
        async with call_process() as calls:
            reply = await calls.acompletion(**kwargs)
            return reply.choices[0].message.content, calls.broken

    content, broken = asyncio.run(run())
    assert content and not broken and len(server.chat_requests()) == 1


def test_the_call_process_ends_with_its_parent(tmp_path: Path) -> None:
    """A parent killed outright (no cleanup at all) leaves no call process behind."""
    script = (
        "import asyncio\n"
        "from judge.call_process import CallProcess\n"
        "async def main():\n"
        "    calls = CallProcess(); calls.spawn(); await calls.ready()\n"
        "    print('ready', flush=True); await asyncio.sleep(600)\n"
        "asyncio.run(main())\n"
    )
    before, left = children_of_killed_parent(script, cwd=tmp_path)
    assert len(before) == 1 and left == []


def test_judge_verify_gives_the_same_verdicts_and_ledger_with_and_without_it(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    """`judge verify` makes its model calls in a process of its own by default on a machine
    with cores to spare (``call_processes`` in the summary); ``--no-call-process`` and
    OUTCOME_JUDGE_CALL_PROCESS turn it off. The verdicts, costs and recorded calls do not
    change, and every process of ``--processes`` gets its own."""
    panel = write_panel(tmp_path / "panel.json", server.base_url)
    env = {"FAKE_PROVIDER_KEY": "sk-fake"}
    runs = {
        "on": (["--call-process"], {}, 1),
        "off by option": (["--no-call-process"], {"OUTCOME_JUDGE_CALL_PROCESS": "true"}, 0),
        "off by setting": ([], {"OUTCOME_JUDGE_CALL_PROCESS": "false"}, 0),
        "2 processes": (["--processes", "2", "--call-process"], {}, 2),
    }
    verdicts: dict[str, list[dict[str, Any]]] = {}
    for n, (name, (options, extra, expected)) in enumerate(runs.items()):
        out = tmp_path / f"verdicts-{n}.jsonl"
        done = judge_cli(
            "verify", str(TICKETS), "--panel", str(panel), "--db",
            f"sqlite:///{tmp_path}/ledger-{n}.db", "--out", str(out), "--json", *options,
            cwd=tmp_path, env={**env, **extra},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout)
        assert summary["call_processes"] == expected, name
        assert summary["failed_judgments"] == 0, name
        verdicts[name] = [_stable(json.loads(line)) for line in out.read_text().splitlines()]
    first = verdicts["on"]
    assert first and all(v == first for v in verdicts.values())
    assert sum(v["cost_usd"] > 0 for v in first) == len(first)


def _stable(verdict: dict[str, Any]) -> dict[str, Any]:
    """A verdict without what differs between two runs of the same calls (times, latencies)."""
    verdict = {k: v for k, v in verdict.items() if k not in ("judged_at", "created_at")}
    verdict["judges"] = [
        {k: v for k, v in j.items() if k not in ("latency_ms", "judged_at")}
        for j in verdict.get("judges", [])
    ]
    return verdict


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _raise_in_the_child() -> None:
    raise RuntimeError("this request cannot be read here")


class _ReadOnlyHere:
    """Pickles in the engine's process; unpickling it raises (in the child)."""

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return (_raise_in_the_child, ())


def test_errors_are_retried_as_they_would_be_here() -> None:
    """What the judge's retry rule reads survives the trip: a bare timeout or lost connection
    that litellm lets through unwrapped stays retryable, a 400 does not, a 429 keeps its wait."""
    import httpx

    from judge.call_process import _ErrorInfo
    from judge.llm_judge import _retry_after, _retryable

    class Status(Exception):
        def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
            super().__init__(f"HTTP {status}")
            self.status_code = status
            # litellm's are httpx's headers: read without regard to case
            self.litellm_response_headers = None if headers is None else httpx.Headers(headers)

    cases: list[BaseException] = [
        TimeoutError(),
        ConnectionResetError(104, "reset by peer"),
        ValueError("not a provider error"),
        Status(400),
        Status(503),
        Status(429, {"Retry-After": "7", "x-secret": "no"}),
    ]
    for exc in cases:
        there = _ErrorInfo.of(exc).error()
        assert _retryable(there) == _retryable(exc), exc
        assert _retry_after(there) == _retry_after(exc), exc
        assert type(there).__name__ == type(exc).__name__
    assert _ErrorInfo.of(cases[-1]).headers == {"retry-after": "7"}  # nothing else crosses


def test_a_request_or_reply_one_side_cannot_read_fails_that_call_alone(
    server: FakeOpenAIServer,
) -> None:
    """A request the child cannot unpickle is answered with the reason (the caller does not
    wait for a deadline), and the child goes on taking calls."""

    async def run() -> tuple[BaseException, Any, bool]:
        async with call_process() as calls:
            with pytest.raises(RemoteCallError) as refused:
                await calls.acompletion(**request(server.base_url, metadata={"x": _ReadOnlyHere()}))
            later = await calls.acompletion(**request(server.base_url))
            return refused.value, later, calls.broken

    refused, later, broken = asyncio.run(run())
    assert "cannot be read here" in str(refused) and not model_client.is_transient(refused)
    assert later.choices[0].message.content and not broken
    assert len(server.chat_requests()) == 1


def test_a_child_that_stops_answering_is_replaced_by_calls_made_here(
    server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Past a call's timeout and the grace the child has stopped answering: it is stopped (it
    must not go on making billed calls while the engine retries them), the call fails as a lost
    connection, and later calls and calls after close() are made in this process."""
    import judge.call_process as module

    monkeypatch.setattr(module, "GRACE_SECONDS", -29.0)  # a 30 s timeout gives up after 1 s
    server.enqueue("gpt-4o-mini", Reply(hang=60))

    async def run() -> tuple[BaseException | None, bool, Any, Any, int | None]:
        async with call_process() as calls:
            lost = await asyncio.gather(
                calls.acompletion(**request(server.base_url, timeout=30)), return_exceptions=True
            )
            assert calls._process is not None
            code = await asyncio.to_thread(calls._process.wait, 10)
            later = await calls.acompletion(**request(server.base_url))
            broken = calls.broken
        after = await calls.acompletion(**request(server.base_url))
        return lost[0], broken, later, after, code

    with caplog.at_level(logging.WARNING, logger="judge.call_process"):
        lost, broken, later, after, code = asyncio.run(run())
    assert isinstance(lost, RemoteCallError) and model_client.is_transient(lost)
    assert broken and code is not None  # the child was stopped
    assert later.choices[0].message.content and after.choices[0].message.content
    assert any("did not answer" in r.getMessage() for r in caplog.records)


def test_a_timeout_that_is_not_a_number_is_read() -> None:
    import httpx

    from judge.call_process import DEFAULT_TIMEOUT, _seconds

    assert _seconds(12) == 12.0
    assert _seconds(httpx.Timeout(5.0, read=40.0)) == 40.0
    assert _seconds(None) == _seconds(True) == DEFAULT_TIMEOUT
