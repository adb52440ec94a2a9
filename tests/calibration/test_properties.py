"""Property tests: symmetries, invariances and bounds that hold for every input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score

from calibration import (
    accuracy_ci,
    bootstrap_ci,
    classification_agreement,
    cohen_kappa,
    correlations,
    human_agreement,
    kappa_ci,
    kappa_from_tables,
    krippendorff_alpha,
)
from calibration.bootstrap import contingency_table

FAST = settings(max_examples=40, deadline=None)
FEW = settings(max_examples=15, deadline=None)

pairs = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=40)
weights_st = st.sampled_from([None, "linear", "quadratic"])
# raters x units with missing values, at least two raters
reliability = st.integers(2, 4).flatmap(
    lambda m: st.lists(
        st.lists(st.one_of(st.none(), st.integers(1, 5)), min_size=m, max_size=m),
        min_size=1,
        max_size=25,
    ).map(lambda units: [list(r) for r in zip(*units, strict=True)])
)
# scores on a 0.1 grid, so that a strictly increasing transform stays strictly increasing in floats
score = st.integers(-1000, 1000).map(lambda v: v / 10)
scores = st.lists(st.tuples(score, score), min_size=2, max_size=40)


def same(x: float, y: float) -> bool:
    return (math.isnan(x) and math.isnan(y)) or x == pytest.approx(y, abs=1e-9)


@FAST
@given(pairs, weights_st)
def test_kappa_symmetric_bounded_and_equal_to_table_formula(
    data: list[tuple[int, int]], w: str | None
) -> None:
    a, b = [x for x, _ in data], [y for _, y in data]
    k = cohen_kappa(a, b, weights=w)  # type: ignore[arg-type]
    assert same(k, cohen_kappa(b, a, weights=w))  # type: ignore[arg-type]
    assert math.isnan(k) or -1.0 - 1e-9 <= k <= 1.0 + 1e-9
    table, _ = contingency_table(a, b)
    assert same(k, float(kappa_from_tables(table, weights=w)))  # type: ignore[arg-type]
    assert same(kappa_ci(a, b, weights=w, n=20, seed=0, max_dropped=1.0)[0], k)  # type: ignore[arg-type]


@FAST
@given(pairs, st.permutations(["w", "x", "y", "z"]))
def test_nominal_kappa_invariant_to_relabelling(
    data: list[tuple[int, int]], names: list[str]
) -> None:
    a, b = [x for x, _ in data], [y for _, y in data]
    relabelled = cohen_kappa([names[x] for x in a], [names[y] for y in b])
    assert same(cohen_kappa(a, b), relabelled)


@FAST
@given(st.lists(st.integers(0, 3), min_size=1, max_size=40))
def test_kappa_perfect_agreement_is_one_or_undefined(a: list[int]) -> None:
    k = cohen_kappa(a, a)
    assert math.isnan(k) if len(set(a)) == 1 else k == 1.0


@FAST
@given(reliability, st.sampled_from(["nominal", "ordinal", "interval", "ratio"]), st.randoms())
def test_alpha_invariant_to_rater_order_and_bounded(
    data: list[list[int | None]], level: str, rnd: object
) -> None:
    alpha = krippendorff_alpha(data, level=level)  # type: ignore[arg-type]
    shuffled = list(data)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert same(alpha, krippendorff_alpha(shuffled, level=level))  # type: ignore[arg-type]
    assert math.isnan(alpha) or alpha <= 1.0 + 1e-9


@FAST
@given(reliability, st.permutations(["v", "w", "x", "y", "z"]))
def test_nominal_alpha_invariant_to_relabelling(
    data: list[list[int | None]], names: list[str]
) -> None:
    relabelled = [[None if v is None else names[v - 1] for v in row] for row in data]
    assert same(krippendorff_alpha(data), krippendorff_alpha(relabelled))


@FAST
@given(st.lists(st.integers(1, 5), min_size=2, max_size=20), st.integers(2, 4))
def test_alpha_perfect_agreement_is_one_or_undefined(unit_values: list[int], raters: int) -> None:
    data = [list(unit_values) for _ in range(raters)]
    for level in ("nominal", "ordinal", "interval"):
        alpha = krippendorff_alpha(data, level=level)
        assert math.isnan(alpha) if len(set(unit_values)) == 1 else alpha == pytest.approx(1.0)


@FAST
@given(scores)
def test_correlations_symmetric_bounded_and_rank_invariant(data: list[tuple[float, float]]) -> None:
    x = np.array([p for p, _ in data])
    y = np.array([h for _, h in data])
    r = correlations(x, y)
    flipped = correlations(y, x)
    for key in ("pearson", "spearman", "kendall"):
        assert same(r[key], flipped[key])
        assert math.isnan(r[key]) or -1.0 <= r[key] <= 1.0
    # a strictly increasing transform of one side keeps the rank correlations
    monotone = correlations(np.exp(x / 50.0) + 3 * x, y)
    assert same(r["spearman"], monotone["spearman"])
    assert same(r["kendall"], monotone["kendall"])


@FAST
@given(scores, st.lists(st.integers(0, 3), min_size=40, max_size=40))
def test_group_correlations_bounded_and_counted(
    data: list[tuple[float, float]], g: list[int]
) -> None:
    x = [p for p, _ in data]
    y = [h for _, h in data]
    r = correlations(x, y, groups=g[: len(x)])
    assert 0 <= r["groups_used"] <= r["groups_total"] == len(set(g[: len(x)]))
    for key in ("group_pearson", "group_spearman", "group_kendall"):
        assert math.isnan(r[key]) == (r["groups_used"] == 0)
        assert math.isnan(r[key]) or -1.0 - 1e-9 <= r[key] <= 1.0 + 1e-9


@FAST
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=40))
def test_classification_bounds_and_swap(data: list[tuple[bool, bool]]) -> None:
    judge, human = [j for j, _ in data], [h for _, h in data]
    r = classification_agreement(judge, human)
    swapped = classification_agreement(human, judge)
    for key in ("accuracy", "precision", "recall", "f1"):
        assert math.isnan(r[key]) or 0.0 <= r[key] <= 1.0
    assert same(r["precision"], swapped["recall"]) and same(r["recall"], swapped["precision"])
    assert same(r["f1"], swapped["f1"])
    matrix = np.array(r["confusion"]["matrix"])
    assert matrix.sum() == len(data)
    assert r["accuracy"] == pytest.approx(np.trace(matrix) / len(data))
    assert r["accuracy"] == pytest.approx(float(np.mean(np.array(judge) == np.array(human))))


@FAST
@given(st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=30), st.integers(0, 99))
def test_bootstrap_mean_interval_ordered_and_inside_data_range(x: list[float], seed: int) -> None:
    lo, hi = bootstrap_ci(np.mean, x, n=50, seed=seed)
    assert min(x) - 1e-9 <= lo <= hi <= max(x) + 1e-9


@FAST
@given(pairs, st.integers(0, 99))
def test_fast_intervals_ordered_and_bounded(data: list[tuple[int, int]], seed: int) -> None:
    a, b = [x for x, _ in data], [y for _, y in data]
    acc, (lo, hi) = accuracy_ci(a, b, n=50, seed=seed)
    assert 0.0 <= lo <= hi <= 1.0 and acc == pytest.approx(np.mean(np.array(a) == np.array(b)))
    k, (k_lo, k_hi) = kappa_ci(a, b, n=50, seed=seed, max_dropped=1.0)
    assert (math.isnan(k) and math.isnan(k_lo)) or k_lo <= k_hi <= 1.0 + 1e-9


@FEW
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=3),
        st.lists(st.sampled_from("abc"), min_size=2, max_size=4),
        min_size=1,
        max_size=15,
    )
)
def test_human_agreement_bounds(labels: dict[str, list[str]]) -> None:
    r = human_agreement(labels)
    assert 0.0 <= r["percent_agreement"] <= 1.0
    assert r["n_units"] == len(labels)
    assert math.isnan(r["kappa"]) or r["kappa"] <= 1.0 + 1e-9
    if all(len(set(v)) == 1 for v in labels.values()):
        assert r["percent_agreement"] == 1.0


def test_kappa_table_formula_matches_sklearn_on_a_fixed_grid() -> None:
    # a deterministic companion to the property above (weights by position in `labels`)
    a = [0, 1, 2, 2, 1, 0, 2, 1]
    b = [0, 2, 2, 1, 1, 0, 0, 1]
    table, _ = contingency_table(a, b)
    for w in (None, "linear", "quadratic"):
        assert float(kappa_from_tables(table, weights=w)) == pytest.approx(
            cohen_kappa_score(a, b, weights=w)
        )
