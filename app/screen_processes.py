"""Which processes run beside a run's event loop: the injection screen
(``OUTCOME_JUDGE_SCREEN_PROCESSES``) and the model calls (``OUTCOME_JUDGE_CALL_PROCESS``).

The screen is the same wherever it runs (:mod:`judge.screen_pool`); this decides where. A run
on one event loop (``judge verify``, ``judge worker``) gets one screening process when the
machine has a core to spare. Each process of ``judge verify --processes N`` already has its own
event loop on its own core, so by default it screens on that loop.

The model calls are the same wherever litellm runs (:mod:`judge.call_process`): ``judge verify``
and ``judge worker`` make them in a process of their own when the machine has a core to spare,
each of ``judge verify --processes`` too (measured: 0.96-0.97 of bare litellm at
``--concurrency 32`` with it, 0.79-0.82 without; ``bench/bench_verify.py``).

:func:`beside_the_loop` starts both for a run and closes them after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from judge.call_process import CallProcess
    from judge.screen_pool import ScreenPool

__all__ = [
    "Beside",
    "beside_the_loop",
    "call_process_wanted",
    "open_call_process",
    "open_screen_pool",
    "screen_process_count",
]


def screen_process_count(*, share: int = 1, configured: int | None = None) -> int:
    """The screening processes of one run: ``configured`` when set, else 1 on a machine with
    more than one core (0 for one of the ``share`` > 1 processes of a run, and on one core).

    >>> screen_process_count(configured=3)
    3
    >>> screen_process_count(share=2)
    0
    """
    if configured is not None:
        return configured
    if share > 1:
        return 0
    return 1 if (os.cpu_count() or 1) > 1 else 0


def open_screen_pool(*, share: int = 1) -> ScreenPool | None:
    """A :class:`judge.screen_pool.ScreenPool` with the default detector and the processes the
    settings ask for, or ``None`` when the screen runs on the event loop. The caller closes it."""
    from config.settings import get_settings
    from judge.guard_model import default_detector
    from judge.screen_pool import ScreenPool

    count = screen_process_count(share=share, configured=get_settings().screen_processes)
    return ScreenPool(default_detector(), processes=count) if count else None


def call_process_wanted(*, configured: bool | None = None) -> bool:
    """Whether the model calls go to a process of their own: ``configured`` when set, else on a
    machine with more than one core.

    >>> call_process_wanted(configured=False)
    False
    """
    if configured is not None:
        return configured
    return (os.cpu_count() or 1) > 1


def open_call_process(*, has_llm: bool) -> CallProcess | None:
    """A :class:`judge.call_process.CallProcess` (not yet started) when the panel makes model
    calls and the settings want one, else ``None``. The caller starts and closes it."""
    from config.settings import get_settings
    from judge.call_process import CallProcess

    if has_llm and call_process_wanted(configured=get_settings().call_process):
        return CallProcess()
    return None


@dataclass(frozen=True)
class Beside:
    """The processes running beside one run's event loop (``None``: that work stays on it)."""

    screen_pool: ScreenPool | None
    calls: CallProcess | None

    @property
    def call_processes(self) -> int:
        """1 while the model calls go to a call process, 0 once it broke or without one."""
        return int(self.calls is not None and not self.calls.broken)


@contextlib.asynccontextmanager
async def beside_the_loop(
    *, has_llm: bool, warm_up: Callable[[ScreenPool | None], None], share: int = 1
) -> AsyncIterator[Beside]:
    """Start the screening processes and the call process the settings ask for, run
    ``warm_up(screen_pool)`` in a thread while they start (imports take seconds: paid before a
    run's clock, and off the loop), and send this context's model calls to the call process;
    both are closed on the way out, whatever happened.

    A test's fake model installed with ``judge.model_client.using`` keeps its calls.
    """
    from judge import model_client

    screen_pool = open_screen_pool(share=share)
    calls = open_call_process(has_llm=has_llm)
    if calls is not None and model_client.stand_in_installed():
        calls = None
    try:
        if screen_pool is not None:
            screen_pool.start()  # the screening processes start while warm_up imports
        if calls is not None:
            calls.spawn()  # it imports litellm while this process does the same
        await asyncio.to_thread(warm_up, screen_pool)
        if calls is not None:
            await calls.ready()
        routed = model_client.using(calls.acompletion) if calls else contextlib.nullcontext()
        with routed:
            yield Beside(screen_pool, calls)
    finally:
        if calls is not None:
            await calls.close()
        if screen_pool is not None:
            await asyncio.to_thread(screen_pool.close)
