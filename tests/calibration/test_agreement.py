"""Agreement statistics against published worked examples and other libraries' reference output."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from calibration import (
    classification_agreement,
    cohen_kappa,
    human_agreement,
    krippendorff_alpha,
)

nan = float("nan")


def _expand(table: list[list[int]]) -> tuple[list[int], list[int]]:
    """Item-level pairs (row category, column category) from a contingency table."""
    a: list[int] = []
    b: list[int] = []
    for i, row in enumerate(table):
        for j, count in enumerate(row):
            a += [i] * count
            b += [j] * count
    return a, b


# --------------------------------------------------------------------------- Cohen's kappa


def test_kappa_wikipedia_two_by_two_example() -> None:
    # Wikipedia "Cohen's kappa", simple example: 50 grant proposals, two readers.
    # yes/yes 20, yes/no 5, no/yes 10, no/no 15 -> p_o = 0.7, p_e = 0.5, kappa = 0.4.
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)


def test_kappa_scikit_learn_doctest_value() -> None:
    y1 = ["negative", "positive", "negative", "neutral", "positive"]
    y2 = ["negative", "positive", "negative", "neutral", "negative"]
    assert cohen_kappa(y1, y2) == pytest.approx(0.6875)


def test_kappa_sas_example_simple_and_linear_weighted() -> None:
    # SAS PROC FREQ printout reproduced in statsmodels' tests (test_inter_rater.py, table10):
    # simple kappa 0.4842; weighted kappa with Cicchetti-Allison (= linear) weights 0.4701.
    a, b = _expand([[0, 4, 1], [0, 8, 0], [0, 1, 5]])
    assert cohen_kappa(a, b) == pytest.approx(0.4842, abs=5e-5)
    assert cohen_kappa(a, b, weights="linear") == pytest.approx(0.4701, abs=5e-5)


# R irr::kappa2 on the `anxiety` data (raters 2 and 3), as recorded in statsmodels' tests.
ANXIETY = np.array(
    [
        [3, 3, 3, 4, 5, 5, 2, 3, 5, 2, 2, 6, 1, 5, 2, 2, 1, 2, 4, 3],  # rater 1
        [3, 6, 4, 6, 2, 4, 2, 4, 3, 3, 2, 3, 3, 3, 2, 2, 1, 3, 3, 4],  # rater 2
        [2, 1, 4, 4, 3, 2, 1, 6, 1, 1, 1, 2, 3, 3, 1, 1, 3, 3, 2, 2],  # rater 3
    ]
).T


@pytest.mark.parametrize(
    ("weights", "expected"),
    [(None, -0.006289308), ("linear", 0.1459075), ("quadratic", 0.2520325)],
)
def test_kappa_matches_r_irr_kappa2(weights: str | None, expected: float) -> None:
    # irr weights by the position among observed categories (1, 2, 3, 4, 6), like ours.
    kappa = cohen_kappa(ANXIETY[:, 1], ANXIETY[:, 2], weights=weights)  # type: ignore[arg-type]
    assert kappa == pytest.approx(expected, abs=1e-7)


def test_kappa_labels_give_the_order_for_weighted_kappa() -> None:
    a = ["low", "mid", "high", "high"]
    b = ["low", "high", "high", "mid"]
    ordered = cohen_kappa(a, b, weights="linear", labels=["low", "mid", "high"])
    same_as_numbers = cohen_kappa([0, 1, 2, 2], [0, 2, 2, 1], weights="linear")
    assert ordered == pytest.approx(same_as_numbers)
    # alphabetical order (high < low < mid) is a different scale, hence a different value
    assert cohen_kappa(a, b, weights="linear") != pytest.approx(ordered)


def test_kappa_undefined_when_both_raters_constant_and_identical() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no library warning may leak
        assert math.isnan(cohen_kappa(["verified"] * 5, ["verified"] * 5))
        assert math.isnan(cohen_kappa([1, 1], [1, 1], labels=[0, 1]))


def test_kappa_constant_but_different_raters_is_zero_not_undefined() -> None:
    # Expected disagreement is 1 (defined); observed is 1 -> kappa = 0, as in scikit-learn.
    assert cohen_kappa(["a", "a"], ["b", "b"]) == 0.0


def test_kappa_perfect_and_booleans() -> None:
    assert cohen_kappa([True, False, True], [True, False, True]) == 1.0


@pytest.mark.parametrize(
    ("a", "b", "kwargs", "message"),
    [
        ([], [], {}, "a is empty"),
        ([1, 2], [1], {}, "same length"),
        ([1, 2], [1, 2], {"weights": "cubic"}, "unknown weights='cubic'"),
        ([1, None], [1, 2], {}, "missing label"),
        ([1.0, nan], [1.0, 2.0], {}, "missing label"),
        (["a", 1], ["a", "b"], {}, "mixes label types"),
        ([1, 2], ["1", "2"], {}, "same label type"),
        (["a", "b", "c"], ["a", "b", "a"], {"labels": ["a", "b"]}, "not in labels: 'c'"),
        (["a", "b"], ["a", "b"], {"labels": ["a", "a", "b"]}, "duplicates"),
        ("ab", "ab", {}, "not a single string"),
    ],
)
def test_kappa_errors(a: object, b: object, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cohen_kappa(a, b, **kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- Krippendorff's alpha

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers x 12
# units with missing values. Published: nominal .743, ordinal .815, interval .849, ratio .797.
KRIPPENDORFF_2011_C = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]


@pytest.mark.parametrize(
    ("level", "published"),
    [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849), ("ratio", 0.797)],
)
def test_alpha_krippendorff_2011_published_values(level: str, published: float) -> None:
    assert round(krippendorff_alpha(KRIPPENDORFF_2011_C, level=level), 3) == published  # type: ignore[arg-type]


def test_alpha_nan_and_none_are_both_missing() -> None:
    as_nan = np.array(
        [[np.nan if v is None else v for v in row] for row in KRIPPENDORFF_2011_C], dtype=float
    )
    assert krippendorff_alpha(as_nan, level="interval") == pytest.approx(
        krippendorff_alpha(KRIPPENDORFF_2011_C, level="interval")
    )


def test_alpha_wikipedia_example() -> None:
    # Wikipedia "Krippendorff's alpha", computational example: 3 coders x 15 units,
    # nominal 0.691, interval 0.811.
    data = [
        [None, None, None, None, None, 3, 4, 1, 2, 1, 1, 3, 3, None, 3],
        [1, None, 2, 1, 3, 3, 4, 3, None, None, None, None, None, None, None],
        [None, None, 2, 1, 3, 4, 4, None, 2, 1, 1, 3, 3, None, 4],
    ]
    assert round(krippendorff_alpha(data, level="nominal"), 3) == 0.691
    assert round(krippendorff_alpha(data, level="interval"), 3) == 0.811


def test_alpha_string_categories() -> None:
    names = {1: "very low", 2: "low", 3: "mid", 4: "high", 5: "very high"}
    data = [[None if v is None else names[v] for v in row] for row in KRIPPENDORFF_2011_C]
    domain = ["very low", "low", "mid", "high", "very high"]
    assert round(krippendorff_alpha(data, level="nominal"), 3) == 0.743
    assert round(krippendorff_alpha(data, level="ordinal", value_domain=domain), 3) == 0.815


def test_alpha_undefined_cases_are_nan_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # a single value overall: expected disagreement 0
        assert math.isnan(krippendorff_alpha([[3, 3, None], [3, 3, 3]], level="interval"))
        # fewer than two pairable values: no unit rated twice
        assert math.isnan(krippendorff_alpha([[1, None], [None, 2]]))
        # variation only among unpairable values (unit 2 has one rating): still one pairable value
        assert math.isnan(krippendorff_alpha([[1, 2], [1, None]]))


def test_alpha_perfect_agreement_is_one() -> None:
    assert krippendorff_alpha([[1, 2, 3], [1, 2, 3]], level="ordinal") == 1.0


@pytest.mark.parametrize(
    ("data", "kwargs", "message"),
    [
        ([], {}, "empty|raters"),
        ([[1, 2, 3]], {}, "at least two rows"),
        ([[1, 2], [1]], {}, "one entry per unit"),
        ([[1, 2], [1, 2]], {"level": "fuzzy"}, "unknown level='fuzzy'"),
        ([["a", "b"], ["a", "b"]], {"level": "interval"}, "numeric ratings"),
        ([["a", "b"], ["a", "b"]], {"level": "ordinal"}, "value_domain"),
        ([["a", "b"], ["a", "c"]], {"value_domain": ["a", "b"]}, "not in value_domain: 'c'"),
        ([[1, 2], [1, 3]], {"value_domain": [1, 2]}, "not in value_domain"),
        ([["a", 1], ["a", 2]], {}, "mixes value types"),
        ([[-1, 2], [1, 2]], {"level": "ratio"}, "non-negative"),
        ([[1, float("inf")], [1, 2]], {}, "infinite"),
    ],
)
def test_alpha_errors(data: object, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        krippendorff_alpha(data, **kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------ classification agreement


def test_classification_counts_by_hand() -> None:
    judge = ["verified", "verified", "verified", "not_verified", "not_verified", "verified"]
    human = [True, True, False, True, False, False]
    r = classification_agreement(judge, human)
    # tp = 2 (items 0, 1), fp = 2 (items 2, 5), fn = 1 (item 3), tn = 1 (item 4)
    assert r["confusion"] == {
        "labels": ["verified", "not_verified"],
        "rows": "human",
        "columns": "judge",
        "matrix": [[2, 1], [2, 1]],
    }
    assert r["counts"] == {"n": 6, "positives": 3, "predicted_positives": 4}
    assert r["accuracy"] == pytest.approx(3 / 6)
    assert r["precision"] == pytest.approx(2 / 4)
    assert r["recall"] == pytest.approx(2 / 3)
    assert r["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))


def test_classification_negative_class_as_positive() -> None:
    judge = ["verified", "verified", "verified", "not_verified", "not_verified", "verified"]
    human = ["resolved", "resolved", "unresolved", "resolved", "unresolved", "not_resolved"]
    r = classification_agreement(judge, human, positive="not_verified")
    # not_verified as the class of interest: tp = 1 (item 4), fp = 1 (item 3), fn = 2
    assert r["precision"] == pytest.approx(1 / 2)
    assert r["recall"] == pytest.approx(1 / 3)
    assert r["counts"] == {"n": 6, "positives": 3, "predicted_positives": 2}
    assert r["confusion"]["matrix"] == [[2, 1], [2, 1]]  # fixed label order either way


def test_classification_accepts_0_1_and_numpy_bool() -> None:
    r = classification_agreement(np.array([1, 0, 1]), np.array([True, False, False]))
    assert r["accuracy"] == pytest.approx(2 / 3)


def test_classification_undefined_precision_is_nan() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = classification_agreement([False, False], [True, False])
    assert math.isnan(r["precision"])  # the judge never says "verified"
    assert r["recall"] == 0.0


def test_classification_mapping_adds_labels() -> None:
    r = classification_agreement(
        ["ok", "bad"], ["verified", "not_verified"], mapping={"ok": True, "bad": False}
    )
    assert r["accuracy"] == 1.0


@pytest.mark.parametrize(
    ("judge", "human", "kwargs", "message"),
    [
        (["verified", "abstain"], [True, False], {}, "'abstain'.*drop abstentions"),
        (["Verified", "maybe"], [True, False], {}, "unknown label.*'Verified', 'maybe'"),
        ([0.5, 1.0], [True, False], {}, "floats"),
        ([2, 1], [True, False], {}, "unknown label.*2"),
        ([True], [True, False], {}, "same length"),
        ([], [], {}, "empty"),
        ([True], [True], {"positive": "yes"}, "unknown positive='yes'"),
    ],
)
def test_classification_errors(
    judge: object, human: object, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        classification_agreement(judge, human, **kwargs)  # type: ignore[arg-type]


# ----------------------------------------------------------------------- human agreement


def test_human_agreement_small_example_by_hand() -> None:
    labels: dict[str, list[str | None]] = {
        "u1": ["a", "a", "a"],
        "u2": ["a", "b", None],  # third rater missing
        "u3": ["b", "b", "b"],
        "u4": ["a"],  # single label: not used
    }
    r = human_agreement(labels)
    assert r["n_units"] == 3 and r["n_units_total"] == 4 and r["n_raters"] == 3
    # within-unit agreeing pairs: u1 3/3, u2 0/1, u3 3/3
    assert r["percent_agreement"] == pytest.approx((1 + 0 + 1) / 3)
    assert r["alpha"] == pytest.approx(
        krippendorff_alpha([["a", "a", "b"], ["a", "b", "b"], ["a", None, "b"]])
    )
    pairs = {tuple(p["raters"]): p for p in r["pairwise"]}
    assert pairs[(0, 1)]["n_units"] == 3 and pairs[(0, 2)]["n_units"] == 2
    assert pairs[(0, 1)]["kappa"] == pytest.approx(cohen_kappa(["a", "a", "b"], ["a", "b", "b"]))
    assert pairs[(0, 2)]["kappa"] == 1.0
    assert r["kappa"] == pytest.approx(np.mean([p["kappa"] for p in r["pairwise"]]))
    assert r["kappa_weights"] is None


def test_human_agreement_weights_follow_level() -> None:
    labels = {"u1": [1, 2], "u2": [3, 3], "u3": [2, 2], "u4": [1, 3]}
    assert human_agreement(labels, level="ordinal")["kappa_weights"] == "linear"
    r = human_agreement(labels, level="interval")
    assert r["kappa_weights"] == "quadratic"
    assert r["kappa"] == pytest.approx(cohen_kappa([1, 3, 2, 1], [2, 3, 2, 3], weights="quadratic"))


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ({}, "empty"),
        ({"u1": ["a"], "u2": ["b", None]}, "two or more human labels"),
        ({"u1": "ab"}, "sequence of labels"),
        ([["a", "b"]], "mapping"),
    ],
)
def test_human_agreement_errors(labels: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        human_agreement(labels)  # type: ignore[arg-type]
