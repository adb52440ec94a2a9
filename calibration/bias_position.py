"""Position bias: a pairwise comparison run in both orders (see :mod:`calibration.bias`).

:func:`position_swap_probe` runs ``compare(a, b)`` and ``compare(b, a)`` for each pair; a
position-blind judge gives mirrored answers. It reports the share of pairs that are not mirrored
(with intervals, as :class:`calibration.bias.FlipRate`) and the share of decided answers that
picked the first slot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from calibration.bias import FlipRate, _rate

PREFERENCES = ("a", "b", "tie")
T = TypeVar("T")


@dataclass(frozen=True)
class PositionResult:
    """Outcome of a position-swap probe.

    ``inconsistency`` is the rate of pairs whose swapped answer does not mirror the original
    one. ``first_share`` is the share of non-tie answers (over both orders) that picked the
    first slot: exactly 0.5 for a judge that always mirrors, 1.0 for one that always picks
    the first.
    """

    n: int
    forward: list[str]
    backward: list[str]
    inconsistency: FlipRate
    first_share: float | None
    first_share_ci: tuple[float, float] | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "inconsistency": self.inconsistency.to_dict(),
            "first_share": self.first_share,
            "first_share_ci": self.first_share_ci,
        }


async def position_swap_probe(
    pairs: Iterable[tuple[T, T]],
    compare: Callable[[T, T], Awaitable[str]],
    *,
    concurrency: int = 8,
    n: int = 1000,
    level: float = 0.95,
    seed: int | np.random.Generator | None = None,
) -> PositionResult:
    """Run a pairwise comparison in both orders and measure position bias.

    Parameters
    ----------
    pairs : iterable of (a, b)
        Items to compare.
    compare : async callable
        ``(first, second) -> "a" | "b" | "tie"`` where ``"a"`` means the *first* argument wins.
    concurrency : int
        Comparisons in flight at once.
    n, level, seed
        Bootstrap options.

    Returns
    -------
    PositionResult
        ``forward`` holds answers for ``(a, b)``; ``backward`` holds answers for ``(b, a)``
        translated back to the original labels, so a position-blind judge has
        ``forward == backward``.

    Examples
    --------
    >>> async def first_wins(x: str, y: str) -> str:
    ...     return "a"
    >>> res = asyncio.run(position_swap_probe([("x", "y"), ("u", "v")], first_wins, seed=0))
    >>> res.inconsistency.rate, res.first_share
    (1.0, 1.0)
    """
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be a positive integer, got {concurrency!r}")
    items = list(pairs)
    if not items:
        raise ValueError("no pairs to compare")
    for i, pair in enumerate(items):
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise ValueError(f"pairs[{i}] must be a 2-tuple (a, b), got {pair!r}")
    gate = asyncio.Semaphore(concurrency)

    async def one(x: T, y: T, i: int) -> str:
        async with gate:
            pref = await compare(x, y)
        if pref not in PREFERENCES:
            raise ValueError(f"compare returned {pref!r} for pair {i}; expected 'a', 'b' or 'tie'")
        return pref

    raw = await asyncio.gather(
        *(one(a, b, i) for i, (a, b) in enumerate(items)),
        *(one(b, a, i) for i, (a, b) in enumerate(items)),
    )
    forward = list(raw[: len(items)])
    swapped = list(raw[len(items) :])
    mirror = {"a": "b", "b": "a", "tie": "tie"}
    backward = [mirror[p] for p in swapped]
    inconsistent = np.array([f != b for f, b in zip(forward, backward, strict=True)], dtype=float)
    rate = _rate(inconsistent, n=n, level=level, seed=seed, to_verified=0, from_verified=0)
    # per pair: first-slot wins (0-2) and non-tie answers (0-2)
    wins = np.array([(f == "a") + (s == "a") for f, s in zip(forward, swapped, strict=True)], float)
    decided = np.array(
        [(f != "tie") + (s != "tie") for f, s in zip(forward, swapped, strict=True)], float
    )
    share: float | None = None
    share_ci: tuple[float, float] | None = None
    if decided.sum() > 0:
        share = float(wins.sum() / decided.sum())
        share_ci = _ratio_ci(wins, decided, n=n, level=level, seed=seed)
    return PositionResult(
        n=len(items),
        forward=forward,
        backward=backward,
        inconsistency=rate,
        first_share=share,
        first_share_ci=share_ci,
    )


def _ratio_ci(
    num: np.ndarray,
    den: np.ndarray,
    *,
    n: int,
    level: float,
    seed: int | np.random.Generator | None,
) -> tuple[float, float]:
    from calibration.bootstrap import bootstrap_ci

    def ratio(x: np.ndarray, y: np.ndarray) -> float:
        total = float(np.sum(y))
        return float(np.sum(x) / total) if total else float("nan")

    lo, hi = bootstrap_ci(ratio, num, den, n=n, level=level, seed=seed, max_dropped=0.5)
    return float(lo), float(hi)
