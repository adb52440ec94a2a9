"""Bootstrap intervals: generic resampling, cluster resampling, and the multinomial fast paths."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.metrics import cohen_kappa_score

from calibration import (
    DegenerateBootstrapError,
    accuracy_ci,
    bootstrap_ci,
    bootstrap_distribution,
    cohen_kappa,
    contingency_table,
    kappa_ci,
    kappa_from_tables,
)


def _pairs(
    n: int, agree: float, seed: int, k: int = 3
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, k, size=n)
    b = np.where(rng.random(n) < agree, a, rng.integers(0, k, size=n))
    return a, b


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
def test_kappa_from_tables_matches_scikit_learn(weights: str | None) -> None:
    for seed in range(20):
        a, b = _pairs(60, 0.5, seed, k=4)
        table, _ = contingency_table(a, b, labels=[0, 1, 2, 3])
        expected = cohen_kappa_score(a, b, labels=[0, 1, 2, 3], weights=weights)
        assert float(kappa_from_tables(table, weights=weights)) == pytest.approx(expected)  # type: ignore[arg-type]


def test_kappa_from_tables_vectorised_and_undefined() -> None:
    tables = np.array([[[20, 5], [10, 15]], [[7, 0], [0, 0]]])
    out = kappa_from_tables(tables)
    assert out[0] == pytest.approx(0.4)  # Wikipedia 2x2 example
    assert math.isnan(out[1])  # one category only: undefined


def test_contingency_table_counts_rows_a_columns_b() -> None:
    table, labels = contingency_table(["x", "y", "y", "z"], ["x", "x", "y", "y"])
    assert labels == ["x", "y", "z"]
    assert table.tolist() == [[1, 0, 0], [1, 1, 0], [0, 1, 0]]


@pytest.mark.parametrize("weights", [None, "quadratic"])
def test_kappa_ci_agrees_with_generic_bootstrap(weights: str | None) -> None:
    # Multinomial tables and row resampling are the same distribution; different random paths
    # give intervals that agree up to Monte Carlo error (sd of the difference ~0.01 here).
    a, b = _pairs(150, 0.6, seed=3)
    kappa, (lo, hi) = kappa_ci(a, b, weights=weights, n=600, seed=1)  # type: ignore[arg-type]
    assert kappa == pytest.approx(cohen_kappa(a, b, weights=weights))  # type: ignore[arg-type]
    g_lo, g_hi = bootstrap_ci(
        lambda x, y: cohen_kappa_score(x, y, weights=weights), a, b, n=600, seed=2
    )
    assert lo == pytest.approx(g_lo, abs=0.03)
    assert hi == pytest.approx(g_hi, abs=0.03)
    assert lo < kappa < hi


def test_accuracy_ci_agrees_with_generic_bootstrap() -> None:
    a, b = _pairs(200, 0.5, seed=5)
    acc, (lo, hi) = accuracy_ci(a, b, n=2000, seed=1)
    assert acc == pytest.approx(float(np.mean(a == b)))
    g_lo, g_hi = bootstrap_ci(lambda x, y: np.mean(x == y), a, b, n=2000, seed=2)
    assert (lo, hi) == pytest.approx((g_lo, g_hi), abs=0.02)


def test_accuracy_ci_coverage_is_near_nominal() -> None:
    # 400 independent samples of 300 items with true agreement 0.7: a 90 % interval should
    # cover 0.7 in roughly 90 % of them (binomial sd of the coverage ~1.5 points).
    rng = np.random.default_rng(11)
    covered = 0
    for _ in range(400):
        agree = rng.random(300) < 0.7
        _, (lo, hi) = accuracy_ci(agree, np.ones(300, dtype=bool), n=400, level=0.9, seed=rng)
        covered += lo <= 0.7 <= hi
    assert 0.85 <= covered / 400 <= 0.95


def test_kappa_ci_coverage_is_near_nominal() -> None:
    # Population: a copies b with prob. 0.6, else a uniform draw, 3 balanced categories, so the
    # population kappa is 0.6 exactly (agreement 0.6 + 0.4/3, chance 1/3).
    rng = np.random.default_rng(12)
    covered = 0
    for _ in range(300):
        b = rng.integers(0, 3, size=400)
        a = np.where(rng.random(400) < 0.6, b, rng.integers(0, 3, size=400))
        _, (lo, hi) = kappa_ci(a, b, n=400, level=0.9, seed=rng)
        covered += lo <= 0.6 <= hi
    assert 0.84 <= covered / 300 <= 0.96


def test_same_seed_same_interval_and_generator_accepted() -> None:
    x = np.arange(30.0)
    assert bootstrap_ci(np.mean, x, n=200, seed=4) == bootstrap_ci(np.mean, x, n=200, seed=4)
    a, b = _pairs(100, 0.5, seed=1)
    assert kappa_ci(a, b, seed=9) == kappa_ci(a, b, seed=9)
    assert bootstrap_ci(np.mean, x, n=50, seed=np.random.default_rng(0))


def test_rows_are_resampled_jointly() -> None:
    x = np.arange(50)
    # each resampled pair keeps its partner: y == 2x in every draw
    dist = bootstrap_distribution(lambda a, b: float(np.all(b == 2 * a)), x, 2 * x, n=50, seed=0)
    assert np.all(dist.estimates == 1.0)


def test_groups_are_resampled_whole() -> None:
    groups = np.repeat(np.arange(10), np.arange(1, 11))  # group g has g + 1 rows
    values = groups.copy()

    def whole_groups(v: npt.NDArray[np.int64]) -> float:
        ids, counts = np.unique(v, return_counts=True)
        return float(np.all(counts % (ids + 1) == 0))  # every drawn group arrives complete

    dist = bootstrap_distribution(whole_groups, values, n=100, seed=0, groups=groups)
    assert np.all(dist.estimates == 1.0)


def test_pass_groups_numbers_each_drawn_copy() -> None:
    groups = np.repeat(np.arange(6), 3)
    seen: list[tuple[int, int]] = []

    def stat(v: npt.NDArray[np.int64], *, groups: npt.NDArray[np.int64]) -> float:
        seen.append((len(np.unique(groups)), len(v)))
        return 0.0

    bootstrap_ci(stat, np.arange(18), n=20, seed=0, groups=groups, pass_groups=True)
    assert seen == [(6, 18)] * 20  # six drawn copies, each with its own id, even when repeated


def test_degenerate_draws_are_dropped_and_counted() -> None:
    calls = iter(range(1000))

    def sometimes_nan(x: npt.NDArray[np.float64]) -> float:
        return math.nan if next(calls) % 20 == 0 else float(np.mean(x))

    dist = bootstrap_distribution(sometimes_nan, np.arange(10.0), n=200, seed=0)
    assert dist.draws == 200 and dist.dropped == 10 and dist.estimates.size == 190


def test_too_many_degenerate_draws_raise() -> None:
    # 9 of 10 pairs are x/x: a third of the resamples hold only x/x -> kappa undefined (nan)
    a = ["x"] * 9 + ["y"]
    b = ["x"] * 9 + ["y"]
    with pytest.raises(DegenerateBootstrapError, match="undefined"):
        bootstrap_ci(cohen_kappa, a, b, n=300, seed=0)
    with pytest.raises(DegenerateBootstrapError, match="max_dropped"):
        kappa_ci(a, b, n=300, seed=0)
    lo, hi = kappa_ci(a, b, n=300, seed=0, max_dropped=0.5)[1]
    assert lo <= hi <= 1.0


def test_kappa_ci_undefined_kappa_gives_nan_interval() -> None:
    kappa, (lo, hi) = kappa_ci(["a"] * 5, ["a"] * 5)
    assert math.isnan(kappa) and math.isnan(lo) and math.isnan(hi)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: bootstrap_ci(np.mean), "at least one sample"),
        (lambda: bootstrap_ci(np.mean, [1, 2], [1]), "same length"),
        (lambda: bootstrap_ci(np.mean, []), "empty"),
        (lambda: bootstrap_ci(np.mean, [1, 2], n=0), "positive integer"),
        (lambda: bootstrap_ci(np.mean, [1, 2], level=95), r"level must be in \(0, 1\)"),
        (lambda: bootstrap_ci(np.mean, [1, 2], seed="x"), "seed must be"),  # type: ignore[arg-type]
        (lambda: bootstrap_ci(np.mean, [1, 2], groups=[1]), "one group id per row"),
        (lambda: bootstrap_ci(np.mean, [1, 2], pass_groups=True), "needs groups"),
        (lambda: bootstrap_ci(lambda x: x, [1, 2]), "one number"),
        (lambda: bootstrap_ci("mean", [1, 2]), "stat must be a function"),  # type: ignore[arg-type]
        (lambda: kappa_ci([1], [1, 2]), "same length"),
        (lambda: kappa_ci([1, 2], [1, 2], weights="cubic"), "unknown weights"),  # type: ignore[arg-type]
        (lambda: kappa_ci([1, 2], [1, 2], max_dropped=2), "max_dropped"),
        (lambda: accuracy_ci([], []), "empty"),
    ],
)
def test_errors(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]
