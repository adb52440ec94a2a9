"""Correlation between judge scores and human scores, overall and averaged per group.

Pearson, Spearman and Kendall's tau-b come from :mod:`scipy.stats`. A correlation of a constant
series is 0/0 and therefore undefined: it is returned as ``nan`` (scipy's own result), without
scipy's ``ConstantInputWarning`` leaking to the caller. See :mod:`calibration.agreement` for the
package-wide rule on undefined statistics.

Per-group ("sample-level", as in the SummEval / G-Eval literature) correlations are computed
inside every group (for example all responses to one dialogue) and averaged with equal weight per
group, skipping the groups where either side is constant or that have fewer than two items, where
the correlation is undefined. ``groups_used`` says how many groups the average is over.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from calibration._validation import as_1d, as_float_1d, check_no_missing_labels, check_same_length

METHODS = ("pearson", "spearman", "kendall")


def _three(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> tuple[float, float, float]:
    """Pearson, Spearman, Kendall tau-b; all nan when undefined (n < 2 or a constant side)."""
    nan = float("nan")
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return nan, nan, nan
    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        warnings.simplefilter("ignore", stats.NearConstantInputWarning)
        with np.errstate(divide="ignore", invalid="ignore"):
            pearson = float(stats.pearsonr(x, y).statistic)
            spearman = float(stats.spearmanr(x, y).statistic)
            kendall = float(stats.kendalltau(x, y, variant="b").statistic)
    clipped = np.clip([pearson, spearman, kendall], -1.0, 1.0)
    return float(clipped[0]), float(clipped[1]), float(clipped[2])


def correlations(
    pred: Sequence[float] | npt.ArrayLike,
    human: Sequence[float] | npt.ArrayLike,
    *,
    groups: Sequence[Any] | npt.ArrayLike | None = None,
) -> dict[str, Any]:
    """Pearson, Spearman and Kendall tau-b between predicted and human scores.

    Parameters
    ----------
    pred, human : sequence of float
        One score per item; NaN or infinite scores are an error (drop or impute them first).
    groups : sequence, optional, keyword-only
        A group id per item (e.g. the source document or dialogue). When given, the result also
        has the per-group averages.

    Returns
    -------
    dict
        ``n``, ``pearson``, ``spearman``, ``kendall`` over all items (``nan`` when either side is
        constant or ``n < 2``). With ``groups``: ``group_pearson``, ``group_spearman``,
        ``group_kendall`` (mean over the groups where both sides vary; ``nan`` if there is no
        such group), ``groups_used`` and ``groups_total``.

    Raises
    ------
    ValueError
        Empty input, different lengths, non-numeric or NaN scores, missing group ids.

    Examples
    --------
    >>> r = correlations([1, 2, 3, 4], [1, 3, 2, 4])
    >>> round(r["pearson"], 4), round(r["spearman"], 4), round(r["kendall"], 4)
    (0.8, 0.8, 0.6667)
    >>> r = correlations([1, 2, 3, 1, 1], [1, 2, 4, 2, 3], groups=["a", "a", "a", "b", "b"])
    >>> round(r["group_pearson"], 4), r["groups_used"], r["groups_total"]
    (0.982, 1, 2)
    >>> correlations([1, 1, 1], [1, 2, 3])["pearson"]  # constant side: undefined
    nan
    """
    x = as_float_1d("pred", pred)
    y = as_float_1d("human", human)
    if groups is None:
        check_same_length(pred=x, human=y)
    else:
        g = as_1d("groups", groups)
        check_no_missing_labels("groups", g)
        check_same_length(pred=x, human=y, groups=g)
    pearson, spearman, kendall = _three(x, y)
    result: dict[str, Any] = {
        "n": int(x.size),
        "pearson": pearson,
        "spearman": spearman,
        "kendall": kendall,
    }
    if groups is None:
        return result
    try:
        _, inverse = np.unique(g, return_inverse=True)
    except TypeError as exc:
        raise ValueError("groups mixes id types that cannot be compared; use one type") from exc
    order = np.argsort(inverse, kind="stable")
    bounds = np.flatnonzero(np.diff(inverse[order])) + 1
    per_group = []
    for idx in np.split(order, bounds):
        stats3 = _three(x[idx], y[idx])
        if not np.isnan(stats3[0]):
            per_group.append(stats3)
    means = np.mean(per_group, axis=0) if per_group else np.full(3, np.nan)
    result.update(
        {
            "group_pearson": float(means[0]),
            "group_spearman": float(means[1]),
            "group_kendall": float(means[2]),
            "groups_used": len(per_group),
            "groups_total": len(bounds) + 1,
        }
    )
    return result
