"""The small protocols the engine is built on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from judge.models import Outcome
from judge.rubric import Rubric
from judge.verdict import JudgeCall, Judgment


@runtime_checkable
class Judge(Protocol):
    """A judge is ``async (outcome, rubric) -> judgment``; name and weight come from the panel."""

    name: str
    weight: float

    async def __call__(self, outcome: Outcome, rubric: Rubric) -> Judgment: ...


class CallStore(Protocol):
    """Where judge calls are recorded as they happen, and looked up again as a cache.

    ``lookup`` returns the recorded successful call for a cache key (model, rubric version, prompt
    version, content hash, sample index), or ``None``. ``begin`` records an attempt *before* it
    is sent (``status="pending"``) and returns once that record is durable, so a call the
    provider may bill is never unrecorded, even if the process dies while it is in flight; it
    sets the call's ``estimated_cost_usd`` to ``estimate()`` when given (a ledger store counts
    the prompt's tokens in the thread that writes the record, off the event loop).
    ``record`` stores every attempt's outcome (completing the ``begin`` record of the same
    ``call_id``), failed attempts included, because every attempt may be billed.
    """

    async def lookup(self, cache_key: str) -> JudgeCall | None: ...

    async def begin(self, call: JudgeCall, estimate: Callable[[], float] | None = None) -> None: ...

    async def record(self, call: JudgeCall) -> None: ...


class MemoryCallStore:
    """A process-local :class:`CallStore` (the default when no ledger is attached)."""

    def __init__(self) -> None:
        self.calls: list[JudgeCall] = []
        self._ok: dict[str, JudgeCall] = {}

    async def lookup(self, cache_key: str) -> JudgeCall | None:
        return self._ok.get(cache_key)

    async def begin(self, call: JudgeCall, estimate: Callable[[], float] | None = None) -> None:
        """Nothing to make durable in memory: a process that dies loses the store anyway."""
        if estimate is not None:
            call.estimated_cost_usd = estimate()

    async def record(self, call: JudgeCall) -> None:
        self.calls.append(call)
        if call.status == "ok" and not call.cached:
            self._ok[call.cache_key] = call
