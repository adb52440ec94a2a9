"""Correlations: published examples, independent brute-force formulas, per-group averaging."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest

from calibration import correlations


def _kendall_tau_b(x: list[float], y: list[float]) -> float:
    """Kendall's tau-b from its definition: (C - D) / sqrt((n0 - n1) (n0 - n2))."""
    concordant = discordant = ties_x = ties_y = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        dx, dy = x[i] - x[j], y[i] - y[j]
        if dx == 0 and dy == 0:
            ties_x += 1
            ties_y += 1
        elif dx == 0:
            ties_x += 1
        elif dy == 0:
            ties_y += 1
        elif dx * dy > 0:
            concordant += 1
        else:
            discordant += 1
    n0 = len(x) * (len(x) - 1) / 2
    return (concordant - discordant) / math.sqrt((n0 - ties_x) * (n0 - ties_y))


def _average_ranks(values: list[float]) -> list[float]:
    return [sum(v < w for v in values) + (sum(v == w for v in values) + 1) / 2 for w in values]


def test_spearman_wikipedia_iq_tv_example() -> None:
    # Wikipedia "Spearman's rank correlation coefficient", example: rho = -29/165.
    iq = [106, 86, 100, 101, 99, 103, 97, 113, 112, 110]
    tv = [7, 0, 27, 50, 28, 29, 20, 12, 6, 17]
    assert correlations(iq, tv)["spearman"] == pytest.approx(-29 / 165)


def test_kendall_scipy_documented_example_is_tau_b() -> None:
    # scipy.stats.kendalltau docstring: tau-b of these tied series is -0.47140452079103173.
    r = correlations([12, 2, 1, 12, 2], [1, 4, 7, 1, 0])
    assert r["kendall"] == pytest.approx(-0.47140452079103173)


def test_against_independent_formulas_with_ties() -> None:
    rng = np.random.default_rng(7)
    x = rng.integers(1, 6, size=40).astype(float).tolist()
    y = (np.asarray(x) + rng.integers(-2, 3, size=40)).tolist()
    r = correlations(x, y)
    assert r["n"] == 40
    assert r["pearson"] == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert r["spearman"] == pytest.approx(np.corrcoef(_average_ranks(x), _average_ranks(y))[0, 1])
    assert r["kendall"] == pytest.approx(_kendall_tau_b(x, y))


def test_constant_input_is_nan_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = correlations([3, 3, 3, 3], [1, 2, 3, 4])
        single = correlations([1.0], [2.0])
    assert all(math.isnan(r[k]) for k in ("pearson", "spearman", "kendall"))
    assert all(math.isnan(single[k]) for k in ("pearson", "spearman", "kendall"))


def test_group_average_skips_constant_and_singleton_groups() -> None:
    pred = [1, 2, 3, 4, 5, 5, 5, 1, 2, 3, 9]
    human = [2, 1, 4, 3, 1, 2, 3, 1, 2, 3, 1]
    groups = ["a", "a", "a", "a", "b", "b", "b", "c", "c", "c", "d"]
    r = correlations(pred, human, groups=groups)
    a = correlations(pred[:4], human[:4])
    c = correlations(pred[7:10], human[7:10])
    # group b: pred constant -> skipped; group d: one item -> skipped
    assert r["groups_used"] == 2 and r["groups_total"] == 4
    for key in ("pearson", "spearman", "kendall"):
        assert r[f"group_{key}"] == pytest.approx((a[key] + c[key]) / 2)
    assert c["pearson"] == pytest.approx(1.0)


def test_group_average_nan_when_no_group_usable() -> None:
    r = correlations([1, 1, 2, 2], [1, 2, 3, 4], groups=[0, 0, 1, 1])
    assert r["groups_used"] == 0 and r["groups_total"] == 2
    assert math.isnan(r["group_pearson"])
    assert r["pearson"] == pytest.approx(np.corrcoef([1, 1, 2, 2], [1, 2, 3, 4])[0, 1])


def test_no_group_keys_without_groups() -> None:
    assert set(correlations([1, 2], [2, 1])) == {"n", "pearson", "spearman", "kendall"}


@pytest.mark.parametrize(
    ("pred", "human", "kwargs", "message"),
    [
        ([], [], {}, "pred is empty"),
        ([1, 2], [1, 2, 3], {}, "same length"),
        ([1, float("nan")], [1, 2], {}, "pred contains 1 NaN"),
        ([1, 2], [1, float("inf")], {}, "human contains 1 NaN/infinite"),
        (["a", "b"], [1, 2], {}, "must hold numbers"),
        ([1, 2], [1, 2], {"groups": [1]}, "same length"),
        ([1, 2], [1, 2], {"groups": ["a", None]}, "groups contains 1 missing"),
    ],
)
def test_errors(pred: object, human: object, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        correlations(pred, human, **kwargs)  # type: ignore[arg-type]
