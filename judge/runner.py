"""Stream many outcomes through :class:`~judge.engine.Engine` objects with bounded concurrency.

The one verification pipeline: ``judge verify`` (one engine, a file of outcomes) and the job
worker (a batch of claimed items, each with the engine of its job) both run
:func:`verify_requests`, with the same resume look-up and the same :class:`RunSummary`.

Requests are read lazily and results are handed to ``sink`` in input order, so memory stays flat
however long the input is (at most ``window`` requests are in flight or waiting to be written).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from judge.engine import Engine
from judge.models import Outcome
from judge.verdict import FLAG_INJECTION, Verdict

Sink = Callable[[Outcome, Verdict, bool], Awaitable[None]]

K = TypeVar("K")


@dataclass(frozen=True)
class Request(Generic[K]):
    """One outcome to verify, the engine (panel, rubrics) that judges it, and the caller's key."""

    outcome: Outcome
    engine: Engine
    key: K


#: A finished request: (request, verdict, resumed), or None when it failed (``on_error``).
_Done = tuple[Request[K], Verdict, bool] | None
RequestSink = Callable[[Request[K], Verdict, bool], Awaitable[None]]
RequestLookup = Callable[[Request[K]], Awaitable[Verdict | None]]
#: Called instead of raising when verifying one request fails (the run goes on without it).
OnError = Callable[[Request[K], Exception], None]


@dataclass
class RunSummary:
    """What a run did: the figures the CLI prints at the end."""

    outcomes: int = 0
    decisions: Counter[str] = field(default_factory=Counter)
    tiers: Counter[str] = field(default_factory=Counter)
    unscored_judgments: int = 0
    failed_judgments: int = 0
    flagged: int = 0
    judge_cost_usd: float = 0.0
    judge_calls_cached: int = 0
    resumed: int = 0
    verify_seconds: float = 0.0
    #: Processes that ran the injection screen beside the event loop (0: on the loop).
    screen_processes: int = 0
    #: Processes that made the model calls beside the event loops (0: on the loops).
    call_processes: int = 0

    @property
    def outcomes_per_second(self) -> float | None:
        """Throughput of the verification phase (start-up and validation excluded)."""
        return self.outcomes / self.verify_seconds if self.verify_seconds > 0 else None

    @property
    def verified(self) -> int:
        return self.decisions["verified"]

    @property
    def cost_per_verified(self) -> float | None:
        """Judge cost per verified outcome; ``None`` when nothing was verified (undefined)."""
        return self.judge_cost_usd / self.verified if self.verified else None

    def to_dict(self) -> dict[str, Any]:
        """The figures as JSON-ready values (the keys of ``judge verify --json``)."""
        rate = self.outcomes_per_second
        return {
            "outcomes": self.outcomes,
            "decisions": dict(self.decisions),
            "tiers": dict(self.tiers),
            "unscored_judgments": self.unscored_judgments,
            "failed_judgments": self.failed_judgments,
            "flagged": self.flagged,
            "judge_cost_usd": round(self.judge_cost_usd, 8),
            "judge_cost_per_verified_usd": self.cost_per_verified,
            "judge_calls_cached": self.judge_calls_cached,
            "resumed": self.resumed,
            "verify_seconds": round(self.verify_seconds, 3),
            "outcomes_per_second": None if rate is None else round(rate, 1),
            "screen_processes": self.screen_processes,
            "call_processes": self.call_processes,
        }

    def merge(self, other: RunSummary) -> None:
        """Add the figures of a run made beside this one (another process of the same run).

        The two ran at the same time: the verification phase lasted as long as the longer.
        """
        self.outcomes += other.outcomes
        self.decisions.update(other.decisions)
        self.tiers.update(other.tiers)
        self.unscored_judgments += other.unscored_judgments
        self.failed_judgments += other.failed_judgments
        self.flagged += other.flagged
        self.judge_cost_usd += other.judge_cost_usd
        self.judge_calls_cached += other.judge_calls_cached
        self.resumed += other.resumed
        self.verify_seconds = max(self.verify_seconds, other.verify_seconds)
        self.screen_processes += other.screen_processes
        self.call_processes += other.call_processes

    def replace(self, before: Verdict, after: Verdict) -> None:
        """Count ``after`` instead of ``before`` (the ledger held a verdict for review)."""
        self.decisions[before.decision] -= 1
        self.decisions[after.decision] += 1
        if before.tier is not None:
            self.tiers[before.tier] -= 1
        if after.tier is not None:
            self.tiers[after.tier] += 1
        self.decisions += Counter()  # drop the zero counts
        self.tiers += Counter()

    def add(self, verdict: Verdict, *, resumed: bool) -> None:
        self.outcomes += 1
        self.decisions[verdict.decision] += 1
        if verdict.tier is not None:
            self.tiers[verdict.tier] += 1
        if FLAG_INJECTION in verdict.flags:
            self.flagged += 1
        if resumed:
            # Work recorded by an earlier run: nothing was spent on it now.
            self.resumed += 1
            return
        self.judge_cost_usd += verdict.cost_usd
        for j in verdict.judges:
            self.unscored_judgments += j.status == "unscored"
            self.failed_judgments += j.status == "error"
            self.judge_calls_cached += j.cached


async def verify_requests(
    requests: Iterable[Request[K]] | AsyncIterable[Request[K]],
    *,
    sink: RequestSink[K],
    concurrency: int = 16,
    lookup: RequestLookup[K] | None = None,
    on_error: OnError[K] | None = None,
    on_progress: Callable[[], None] | None = None,
    summary: RunSummary | None = None,
    ordered: bool = True,
) -> RunSummary:
    """Verify ``requests`` concurrently and pass each result to ``sink`` (in input order).

    Parameters
    ----------
    requests : iterable or async iterable of Request
        Read lazily, while earlier requests are judged; each names its outcome and the engine
        that judges it. An async source (a worker claiming batches) may wait for more work:
        results keep reaching ``sink`` meanwhile.
    sink : callable
        ``await sink(request, verdict, resumed)`` for each request.
    concurrency : int
        Requests verified at once (LLM calls are further bounded per provider).
    lookup : callable, optional
        Returns an already-recorded verdict for a request (resume); that outcome is not re-judged.
    on_error : callable, optional
        ``on_error(request, exc)`` when the look-up or the engine raises for one request; that
        request then reaches neither ``sink`` nor the summary. Without it the error propagates and
        the run stops (requests still in flight are cancelled).
    summary : RunSummary, optional
        Add to this summary (a worker keeps one for its life); a new one by default.
    ordered : bool
        Hand results to ``sink`` in input order (a verdict file); ``False`` hands each over as
        soon as it is ready, so one slow outcome holds up nothing (a worker).
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    gate = asyncio.Semaphore(concurrency)
    # Requests started and not yet handed to the sink: bounds memory however long the input.
    room = asyncio.Semaphore(concurrency * 4)
    summary = summary if summary is not None else RunSummary()
    started = time.perf_counter()
    # Ordered: tasks in input order; unordered: tasks as they finish. None: the source ended.
    ready: asyncio.Queue[asyncio.Task[_Done[K]] | None] = asyncio.Queue()
    live: set[asyncio.Task[_Done[K]]] = set()
    counts = {"started": 0}

    async def one(request: Request[K]) -> _Done[K]:
        async with gate:
            try:
                if lookup is not None:
                    previous = await lookup(request)
                    if previous is not None:
                        return request, previous, True
                return request, await request.engine.verify(request.outcome), False
            except Exception as exc:
                if on_error is None:
                    raise
                on_error(request, exc)
                return None

    def finished(task: asyncio.Task[_Done[K]]) -> None:
        live.discard(task)
        if not ordered:
            ready.put_nowait(task)

    async def produce() -> None:
        async for request in _aiter(requests):
            await room.acquire()
            task = asyncio.create_task(one(request))
            live.add(task)
            task.add_done_callback(finished)
            counts["started"] += 1
            if ordered:
                ready.put_nowait(task)

    producer = asyncio.create_task(produce())
    producer.add_done_callback(lambda _: ready.put_nowait(None))
    try:
        sunk, source_done = 0, False
        while not (source_done and sunk == counts["started"]):
            task = await ready.get()
            if task is None:
                source_done = True
                producer.result()  # the source's own error, if it failed
                continue
            done = await task
            room.release()
            sunk += 1
            if done is not None:
                request, verdict, resumed = done
                await sink(request, verdict, resumed)
                summary.add(verdict, resumed=resumed)
            if on_progress is not None:
                on_progress()
    finally:
        producer.cancel()
        for task in list(live):
            task.cancel()
    summary.verify_seconds += time.perf_counter() - started
    return summary


async def _aiter(
    requests: Iterable[Request[K]] | AsyncIterable[Request[K]],
) -> AsyncIterator[Request[K]]:
    if isinstance(requests, AsyncIterable):
        async for request in requests:
            yield request
    else:
        for request in requests:
            yield request


async def verify_stream(
    engine: Engine,
    outcomes: Iterable[Outcome],
    *,
    sink: Sink,
    concurrency: int = 16,
    on_progress: Callable[[], None] | None = None,
) -> RunSummary:
    """Verify ``outcomes`` with one engine and no resume: :func:`verify_requests` keyed by nothing.

    ``sink(outcome, verdict, resumed)`` takes the outcome instead of the request; ``concurrency``
    and ``on_progress`` are :func:`verify_requests`'s.
    """

    async def request_sink(request: Request[None], verdict: Verdict, resumed: bool) -> None:
        await sink(request.outcome, verdict, resumed)

    return await verify_requests(
        (Request(outcome, engine, None) for outcome in outcomes),
        sink=request_sink,
        concurrency=concurrency,
        on_progress=on_progress,
    )
