"""Inter-rater agreement of the three SummEval experts (public data, SummaC's copy).

``summeval/summac_consistency_3experts.json`` maps 100 summary ids to records whose
``annotations`` are the three expert consistency ratings (1-5), always in the same expert order.
The alpha values are pinned after an independent re-computation in this file (Krippendorff's
coincidence-matrix definition, written out here), not copied from the implementation.
"""

from __future__ import annotations

import json
from itertools import combinations

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.metrics import cohen_kappa_score

from calibration import human_agreement, krippendorff_alpha
from tests.conftest import shared_dataset


@pytest.fixture(scope="module")
def ratings() -> npt.NDArray[np.float64]:
    """Experts x summaries matrix of consistency ratings."""
    path = shared_dataset("summeval/summac_consistency_3experts.json")
    records = json.loads(path.read_text())
    assert len(records) == 100
    units = [record["annotations"] for record in records.values()]
    assert all(len(u) == 3 for u in units)
    return np.asarray(units, dtype=np.float64).T


def _coincidences(data: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], list[float]]:
    """Krippendorff's coincidence matrix o_ck for complete data (every unit has m values)."""
    values = sorted(set(data.ravel().tolist()))
    index = {v: i for i, v in enumerate(values)}
    o = np.zeros((len(values), len(values)))
    m = data.shape[0]
    for unit in data.T:
        for i, j in combinations(range(m), 2):
            c, k = index[unit[i]], index[unit[j]]
            o[c, k] += 1 / (m - 1)
            o[k, c] += 1 / (m - 1)
    return o, values


def _alpha_by_definition(data: npt.NDArray[np.float64], level: str) -> float:
    o, values = _coincidences(data)
    n_c = o.sum(axis=1)
    n = n_c.sum()
    size = len(values)
    delta = np.zeros((size, size))
    for c in range(size):
        for k in range(size):
            if level == "interval":
                delta[c, k] = (values[c] - values[k]) ** 2
            else:  # ordinal: (sum of n_g from c to k - (n_c + n_k) / 2) ** 2
                lo, hi = min(c, k), max(c, k)
                delta[c, k] = (n_c[lo : hi + 1].sum() - (n_c[c] + n_c[k]) / 2) ** 2
    d_observed = (o * delta).sum() / n
    d_expected = (np.outer(n_c, n_c) * delta).sum() / (n * (n - 1))
    return float(1 - d_observed / d_expected)


def _interval_alpha_pairwise(data: npt.NDArray[np.float64]) -> float:
    """Interval alpha: mean squared within-unit difference / mean squared any-pair difference."""
    within = [(u[i] - u[j]) ** 2 for u in data.T for i, j in combinations(range(len(u)), 2)]
    pooled = data.ravel()
    between = (pooled[:, None] - pooled[None, :]) ** 2
    n = pooled.size
    return float(1 - np.mean(within) / (between.sum() / (n * (n - 1))))


def test_interval_alpha(ratings: npt.NDArray[np.float64]) -> None:
    ours = krippendorff_alpha(ratings, level="interval")
    assert ours == pytest.approx(_alpha_by_definition(ratings, "interval"), abs=1e-12)
    assert ours == pytest.approx(_interval_alpha_pairwise(ratings), abs=1e-12)
    assert round(ours, 4) == 0.9173


def test_ordinal_alpha(ratings: npt.NDArray[np.float64]) -> None:
    ours = krippendorff_alpha(ratings, level="ordinal")
    assert ours == pytest.approx(_alpha_by_definition(ratings, "ordinal"), abs=1e-12)
    assert round(ours, 4) == 0.8974


def test_alpha_is_plausible_for_expert_consistency_ratings(
    ratings: npt.NDArray[np.float64],
) -> None:
    # Consistency ratings are bimodal (mostly 5 = consistent, or 1-2 = hallucinated), so experts
    # agree strongly on the scale but less on the exact category.
    nominal = krippendorff_alpha(ratings, level="nominal")
    ordinal = krippendorff_alpha(ratings, level="ordinal")
    interval = krippendorff_alpha(ratings, level="interval")
    assert 0.3 < nominal < ordinal < interval < 1.0


def test_human_agreement_on_the_experts(ratings: npt.NDArray[np.float64]) -> None:
    by_unit = {f"s{j}": ratings[:, j].tolist() for j in range(ratings.shape[1])}
    r = human_agreement(by_unit, level="interval")
    assert (r["n_units"], r["n_units_total"], r["n_raters"]) == (100, 100, 3)
    assert r["alpha"] == pytest.approx(krippendorff_alpha(ratings, level="interval"))
    for pair in r["pairwise"]:
        i, j = pair["raters"]
        assert pair["kappa"] == pytest.approx(
            cohen_kappa_score(ratings[i], ratings[j], weights="quadratic")
        )
        assert pair["percent_agreement"] == pytest.approx(float(np.mean(ratings[i] == ratings[j])))
    # complete data: mean within-unit pair agreement == mean of the pairwise agreements
    assert r["percent_agreement"] == pytest.approx(
        np.mean([p["percent_agreement"] for p in r["pairwise"]])
    )
    # quadratic-weighted kappa and interval alpha are near-identical for large samples
    assert r["kappa"] == pytest.approx(r["alpha"], abs=0.02)
    nominal = human_agreement(by_unit)
    assert nominal["kappa_weights"] is None
    assert nominal["kappa"] < r["kappa"]
