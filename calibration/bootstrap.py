"""Percentile bootstrap confidence intervals, generic and fast paths for label agreement.

Generic: :func:`bootstrap_ci` resamples units (rows of all samples jointly) or, with ``groups``,
whole groups (cluster bootstrap), recomputes the statistic and takes the percentile interval.

Fast path: for categorical agreement the statistic depends on the data only through the
contingency table, and resampling ``N`` units with replacement is exactly drawing the table from
``Multinomial(N, observed cell shares)``. :func:`kappa_ci` and :func:`accuracy_ci` draw all the
tables at once with numpy and compute the statistic vectorised, so a 1,000-draw interval on a
million label pairs costs about as much as one pass over the labels.

Degenerate resamples
--------------------
A resample can make the statistic undefined (``nan``; e.g. every resampled pair in one category).
Those draws are dropped and counted (:attr:`BootstrapResult.dropped`); the interval is taken over
the remaining draws. If more than ``max_dropped`` (default 10 %) of the draws are undefined the
interval would describe a different, conditioned population, so :class:`DegenerateBootstrapError`
is raised instead: collect more data or use a statistic that is defined on it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from calibration._validation import (
    as_1d,
    check_choice,
    check_draws,
    check_fraction,
    check_level,
    check_no_missing_labels,
    check_same_length,
    encode_label_pair,
    rng_from,
)
from calibration.agreement import WEIGHTS, Weights

Seed = int | np.random.Generator | None


class DegenerateBootstrapError(ValueError):
    """Too many bootstrap draws gave an undefined (NaN) statistic to trust the interval."""


@dataclass(frozen=True)
class BootstrapResult:
    """The bootstrap distribution of a statistic.

    Attributes
    ----------
    estimates : numpy.ndarray
        The finite statistic of every kept draw.
    draws : int
        Draws requested.
    dropped : int
        Draws whose statistic was undefined (NaN) and were dropped.
    """

    estimates: npt.NDArray[np.float64]
    draws: int
    dropped: int

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        """Percentile interval ``(lo, hi)`` at ``level`` over the kept draws."""
        level = check_level(level)
        tail = (1.0 - level) / 2.0
        lo, hi = np.quantile(self.estimates, [tail, 1.0 - tail])
        return float(lo), float(hi)


def _finish(estimates: npt.NDArray[np.float64], draws: int, max_dropped: float) -> BootstrapResult:
    finite = np.isfinite(estimates)
    dropped = int((~finite).sum())
    if dropped > max_dropped * draws or dropped == draws:
        raise DegenerateBootstrapError(
            f"{dropped} of {draws} bootstrap draws gave an undefined (NaN) statistic, more than "
            f"max_dropped={max_dropped:g} of them; the data is too small or too uniform for an "
            "interval (collect more labels, or raise max_dropped knowingly)"
        )
    return BootstrapResult(estimates=estimates[finite], draws=draws, dropped=dropped)


def _group_index(
    groups: object, n_units: int
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """(order, starts, sizes): the rows of group k are order[starts[k]:starts[k] + sizes[k]]."""
    g = as_1d("groups", groups)
    check_no_missing_labels("groups", g)
    if g.size != n_units:
        raise ValueError(
            f"groups has {g.size} entries but the samples have {n_units} rows; give one group "
            "id per row"
        )
    try:
        _, inverse, sizes = np.unique(g, return_inverse=True, return_counts=True)
    except TypeError as exc:
        raise ValueError("groups mixes id types that cannot be compared; use one type") from exc
    order = np.argsort(inverse, kind="stable")
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return order.astype(np.intp), starts.astype(np.intp), sizes.astype(np.intp)


def bootstrap_distribution(
    stat: Callable[..., float],
    *samples: Sequence[Any] | npt.ArrayLike,
    n: int = 1000,
    seed: Seed = None,
    groups: Sequence[Any] | npt.ArrayLike | None = None,
    pass_groups: bool = False,
    max_dropped: float = 0.1,
) -> BootstrapResult:
    """Bootstrap distribution of ``stat(*samples)``; see :func:`bootstrap_ci` for the options."""
    if not callable(stat):
        raise ValueError(f"stat must be a function of the samples, got {stat!r}")
    if not samples:
        raise ValueError("pass at least one sample after stat, e.g. bootstrap_ci(stat, a, b)")
    draws = check_draws(n)
    max_dropped = check_fraction("max_dropped", max_dropped)
    rng = rng_from(seed)
    arrays = []
    for i, sample in enumerate(samples):
        arr = np.asarray(sample)
        if arr.ndim == 0 or arr.shape[0] == 0:
            raise ValueError(f"sample {i} is empty or a scalar; pass one row per unit")
        arrays.append(arr)
    n_units = check_same_length(**{f"sample {i}": a for i, a in enumerate(arrays)})
    if pass_groups and groups is None:
        raise ValueError("pass_groups=True needs groups=; give the group id of every row")
    estimates = np.empty(draws, dtype=np.float64)
    if groups is None:
        for k in range(draws):
            idx = rng.integers(0, n_units, size=n_units)
            estimates[k] = _scalar(stat(*(a[idx] for a in arrays)))
        return _finish(estimates, draws, max_dropped)
    order, starts, sizes = _group_index(groups, n_units)
    n_groups = sizes.size
    for k in range(draws):
        chosen = rng.integers(0, n_groups, size=n_groups)
        lengths = sizes[chosen]
        offsets = np.repeat(starts[chosen] - np.cumsum(lengths) + lengths, lengths)
        idx = order[offsets + np.arange(lengths.sum())]
        resampled = (a[idx] for a in arrays)
        if pass_groups:
            draw_ids = np.repeat(np.arange(n_groups), lengths)
            estimates[k] = _scalar(stat(*resampled, groups=draw_ids))
        else:
            estimates[k] = _scalar(stat(*resampled))
    return _finish(estimates, draws, max_dropped)


def _scalar(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"stat must return one number, got {value!r}") from exc


def bootstrap_ci(
    stat: Callable[..., float],
    *samples: Sequence[Any] | npt.ArrayLike,
    n: int = 1000,
    level: float = 0.95,
    seed: Seed = None,
    groups: Sequence[Any] | npt.ArrayLike | None = None,
    pass_groups: bool = False,
    max_dropped: float = 0.1,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``stat(*samples)``.

    Parameters
    ----------
    stat : callable
        ``stat(*resampled_samples) -> float``; it may return ``nan`` for an undefined resample.
    *samples : array-like
        Paired samples with one row per unit (first axis); rows are resampled jointly.
    n : int, keyword-only
        Number of bootstrap draws.
    level : float, keyword-only
        Confidence level in (0, 1).
    seed : int, numpy Generator or None, keyword-only
        Seed for reproducible intervals.
    groups : sequence, optional, keyword-only
        A group id per row: resample whole groups (cluster bootstrap) instead of rows. Use it
        when rows within a group are not independent (several responses to one dialogue).
    pass_groups : bool, keyword-only
        With ``groups``: call ``stat(*resampled, groups=ids)`` where ``ids`` numbers every drawn
        copy of a group separately (a group drawn twice counts as two groups), for statistics
        such as per-group averaged correlations.
    max_dropped : float, keyword-only
        Largest share of undefined (NaN) draws tolerated; they are dropped. More raises
        :class:`DegenerateBootstrapError`.

    Returns
    -------
    tuple of float
        ``(lo, hi)``. Use :func:`bootstrap_distribution` to see the draws and the dropped count.

    Raises
    ------
    ValueError
        No samples, samples of different lengths, bad ``n``/``level``/``seed``/``groups``.
    DegenerateBootstrapError
        Too many undefined draws.

    Examples
    --------
    >>> import numpy as np
    >>> lo, hi = bootstrap_ci(np.mean, [1.0, 2.0, 3.0, 4.0, 5.0], n=500, seed=0)
    >>> 1.0 <= lo < 3.0 < hi <= 5.0
    True
    """
    return bootstrap_distribution(
        stat,
        *samples,
        n=n,
        seed=seed,
        groups=groups,
        pass_groups=pass_groups,
        max_dropped=max_dropped,
    ).interval(level)


def contingency_table(
    a: Sequence[Any] | npt.ArrayLike,
    b: Sequence[Any] | npt.ArrayLike,
    *,
    labels: Sequence[Any] | None = None,
) -> tuple[npt.NDArray[np.int64], list[Any]]:
    """Counts ``table[i, j]`` of items with ``a == labels[i]`` and ``b == labels[j]``.

    Examples
    --------
    >>> table, labels = contingency_table(["x", "y", "y"], ["x", "x", "y"])
    >>> table.tolist(), labels
    ([[1, 0], [1, 1]], ['x', 'y'])
    """
    codes_a, codes_b, values = encode_label_pair(a, b, labels)
    k = len(values)
    table = np.bincount(codes_a * k + codes_b, minlength=k * k).reshape(k, k)
    return table.astype(np.int64), values.tolist()


def kappa_from_tables(tables: npt.ArrayLike, *, weights: Weights = None) -> npt.NDArray[np.float64]:
    """Cohen's kappa of one ``(K, K)`` or many ``(D, K, K)`` contingency tables, vectorised.

    Same definition as scikit-learn's ``cohen_kappa_score``: ``1 - sum(w * observed) /
    sum(w * expected)`` with ``expected`` the outer product of the marginals over ``N``; ``nan``
    where the expected weighted disagreement is 0 (undefined).

    Examples
    --------
    >>> float(kappa_from_tables([[20, 5], [10, 15]]))
    0.4
    """
    check_choice("weights", weights, WEIGHTS)
    t = np.asarray(tables, dtype=np.float64)
    if t.ndim < 2 or t.shape[-1] != t.shape[-2]:
        raise ValueError(f"tables must be square (K, K) or (D, K, K), got shape {t.shape}")
    k = t.shape[-1]
    pos = np.arange(k)
    if weights is None:
        w = 1.0 - np.eye(k)
    elif weights == "linear":
        w = np.abs(pos[:, None] - pos[None, :]).astype(np.float64)
    else:
        w = ((pos[:, None] - pos[None, :]) ** 2).astype(np.float64)
    total = t.sum(axis=(-2, -1))
    rows = t.sum(axis=-1)
    cols = t.sum(axis=-2)
    observed = (t * w).sum(axis=(-2, -1))
    expected = np.einsum("...i,ij,...j->...", rows, w, cols)
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = 1.0 - observed * total / expected
    return np.where(expected > 0, kappa, np.nan)


def _multinomial_tables(
    table: npt.NDArray[np.int64], draws: int, rng: np.random.Generator
) -> npt.NDArray[np.int64]:
    total = int(table.sum())
    shares = table.ravel() / total
    return rng.multinomial(total, shares, size=draws).reshape(draws, *table.shape)


def kappa_ci(
    a: Sequence[Any] | npt.ArrayLike,
    b: Sequence[Any] | npt.ArrayLike,
    *,
    weights: Weights = None,
    labels: Sequence[Any] | None = None,
    n: int = 1000,
    level: float = 0.95,
    seed: Seed = None,
    max_dropped: float = 0.1,
) -> tuple[float, tuple[float, float]]:
    """Cohen's kappa with a percentile bootstrap interval, via multinomial contingency tables.

    Statistically the same as ``bootstrap_ci(cohen_kappa, a, b)`` (resampling item pairs),
    but it draws the ``n`` resampled contingency tables directly, so the cost does not grow
    with ``n`` times the number of items.

    Parameters
    ----------
    a, b : sequence of labels
        Paired labels, as for :func:`calibration.cohen_kappa`.
    weights, labels : keyword-only
        As for :func:`calibration.cohen_kappa`.
    n, level, seed, max_dropped : keyword-only
        As for :func:`bootstrap_ci`.

    Returns
    -------
    tuple
        ``(kappa, (lo, hi))``; ``kappa`` is ``nan`` when undefined, and then the interval is
        ``(nan, nan)`` (every resample is degenerate too).

    Examples
    --------
    >>> a = ["y"] * 40 + ["n"] * 60
    >>> b = ["y"] * 30 + ["n"] * 10 + ["y"] * 5 + ["n"] * 55
    >>> k, (lo, hi) = kappa_ci(a, b, n=2000, seed=1)
    >>> round(k, 4), lo < k < hi
    (0.6809, True)
    """
    check_choice("weights", weights, WEIGHTS)
    draws = check_draws(n)
    level = check_level(level)
    max_dropped = check_fraction("max_dropped", max_dropped)
    rng = rng_from(seed)
    table, _ = contingency_table(a, b, labels=labels)
    kappa = float(kappa_from_tables(table, weights=weights))
    if np.isnan(kappa):
        return kappa, (float("nan"), float("nan"))
    boot = kappa_from_tables(_multinomial_tables(table, draws, rng), weights=weights)
    return kappa, _finish(boot, draws, max_dropped).interval(level)


def accuracy_ci(
    a: Sequence[Any] | npt.ArrayLike,
    b: Sequence[Any] | npt.ArrayLike,
    *,
    n: int = 1000,
    level: float = 0.95,
    seed: Seed = None,
) -> tuple[float, tuple[float, float]]:
    """Share of items where ``a`` and ``b`` agree, with a percentile bootstrap interval.

    Equivalent to bootstrapping the items; the number of agreements is drawn from
    ``Binomial(N, observed share)`` directly.

    Examples
    --------
    >>> acc, (lo, hi) = accuracy_ci([1, 1, 0, 0], [1, 0, 0, 0], n=500, seed=0)
    >>> acc, 0.0 <= lo <= acc <= hi <= 1.0
    (0.75, True)
    """
    draws = check_draws(n)
    level = check_level(level)
    rng = rng_from(seed)
    codes_a, codes_b, _ = encode_label_pair(a, b)
    total = codes_a.size
    agree = int((codes_a == codes_b).sum())
    boot = rng.binomial(total, agree / total, size=draws) / total
    return agree / total, BootstrapResult(boot.astype(np.float64), draws, 0).interval(level)


__all__ = [
    "BootstrapResult",
    "DegenerateBootstrapError",
    "accuracy_ci",
    "bootstrap_ci",
    "bootstrap_distribution",
    "contingency_table",
    "kappa_ci",
    "kappa_from_tables",
]
