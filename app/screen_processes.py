"""How many processes run the injection screen beside a run (``OUTCOME_JUDGE_SCREEN_PROCESSES``).

The screen is the same wherever it runs (:mod:`judge.screen_pool`); this decides where. A run
on one event loop (``judge verify``, ``judge worker``) gets one screening process when the
machine has a core to spare. Each process of ``judge verify --processes N`` already has its own
event loop on its own core, so by default it screens on that loop.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from judge.screen_pool import ScreenPool

__all__ = ["open_screen_pool", "screen_process_count"]


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
