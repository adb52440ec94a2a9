"""Stream many outcomes through an :class:`~judge.engine.Engine` with bounded concurrency.

Outcomes are read lazily and results are handed to ``sink`` in input order, so memory stays flat
however long the input is (at most ``window`` outcomes are in flight or waiting to be written).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from judge.engine import Engine
from judge.models import Outcome
from judge.verdict import FLAG_INJECTION, Verdict

Sink = Callable[[Outcome, Verdict, bool], Awaitable[None]]
Lookup = Callable[[Outcome], Awaitable[Verdict | None]]


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


async def verify_stream(
    engine: Engine,
    outcomes: Iterable[Outcome],
    *,
    sink: Sink,
    concurrency: int = 16,
    lookup: Lookup | None = None,
    on_progress: Callable[[], None] | None = None,
) -> RunSummary:
    """Verify ``outcomes`` concurrently and pass each result to ``sink`` in input order.

    Parameters
    ----------
    engine : Engine
        The configured engine.
    outcomes : iterable of Outcome
        Read lazily.
    sink : callable
        ``await sink(outcome, verdict, resumed)`` for each outcome, in input order.
    concurrency : int
        Outcomes verified at once (LLM calls are further bounded per provider).
    lookup : callable, optional
        Returns an already-recorded verdict for an outcome (resume); that outcome is not re-judged.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    gate = asyncio.Semaphore(concurrency)
    window = concurrency * 4
    summary = RunSummary()
    started = time.perf_counter()
    pending: deque[asyncio.Task[tuple[Outcome, Verdict, bool]]] = deque()

    async def one(outcome: Outcome) -> tuple[Outcome, Verdict, bool]:
        async with gate:
            if lookup is not None:
                previous = await lookup(outcome)
                if previous is not None:
                    return outcome, previous, True
            return outcome, await engine.verify(outcome), False

    async def drain_head() -> None:
        outcome, verdict, resumed = await pending.popleft()
        await sink(outcome, verdict, resumed)
        summary.add(verdict, resumed=resumed)
        if on_progress is not None:
            on_progress()

    try:
        for outcome in outcomes:
            pending.append(asyncio.create_task(one(outcome)))
            if len(pending) >= window:
                await drain_head()
        while pending:
            await drain_head()
    finally:
        for task in pending:
            task.cancel()
    summary.verify_seconds = time.perf_counter() - started
    return summary
