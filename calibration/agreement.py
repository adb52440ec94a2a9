"""Agreement statistics: Cohen's kappa, Krippendorff's alpha, binary classification agreement.

The arithmetic is delegated to the well-kept libraries (scikit-learn, krippendorff); this module
adds up-front validation and explicit rules for the cases where a statistic is undefined.

Undefined statistics (one rule for the whole ``calibration`` package)
---------------------------------------------------------------------
A chance-corrected agreement or correlation is a ratio whose denominator measures the variation
in the data. When the data has no variation (every rating is the same category, a rater or a
score is constant) the ratio is 0/0: the statistic is **undefined** and the functions return
``nan``. This is scikit-learn's default for ``cohen_kappa_score``, scipy's result for
correlations of constant input and statsmodels' rule for Krippendorff's alpha, so ``nan`` is
what users of those libraries already expect; the library warnings are not re-emitted. ``1.0``
would claim a reliability the data cannot show (raters who only ever saw one kind of case have
not shown that they can tell cases apart), and ``0`` would claim chance-level agreement; neither
is measured. Use ``math.isnan`` (or ``numpy.isnan``) on the result and report "undefined" rather
than treating it as a number. Inputs that are *wrong* rather than uninformative (empty,
mismatched lengths, NaN labels, unknown options or labels) raise :class:`ValueError`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from calibration._validation import (
    as_1d,
    check_choice,
    check_same_length,
    describe_values,
    distinct_values,
    encode_label_pair,
    is_missing,
)

Weights = Literal["linear", "quadratic"] | None
Level = Literal["nominal", "ordinal", "interval", "ratio"]

WEIGHTS: tuple[Weights, ...] = (None, "linear", "quadratic")
LEVELS: tuple[Level, ...] = ("nominal", "ordinal", "interval", "ratio")

#: Labels accepted by :func:`classification_agreement`, mapped to "is verified".
#: Exact matches only: no case folding, no guessing. Pass ``mapping=`` for anything else.
BINARY_LABELS: Mapping[object, bool] = {
    "verified": True,
    "not_verified": False,
    "resolved": True,
    "not_resolved": False,
    "unresolved": False,
    "correct": True,
    "incorrect": False,
    "pass": True,
    "fail": False,
}
POSITIVE_CLASSES = ("verified", "not_verified")


def cohen_kappa(
    a: Sequence[Any] | npt.ArrayLike,
    b: Sequence[Any] | npt.ArrayLike,
    *,
    weights: Weights = None,
    labels: Sequence[Any] | None = None,
) -> float:
    """Cohen's kappa between two raters (unweighted, linear or quadratic weights).

    Parameters
    ----------
    a, b : sequence of labels
        One label per item from each rater (strings, booleans or numbers; nothing missing).
    weights : {None, "linear", "quadratic"}, keyword-only
        ``None`` counts every disagreement equally; ``"linear"``/``"quadratic"`` weight a
        disagreement by the distance ``|i - j|`` or ``(i - j)**2`` between category positions.
    labels : sequence, optional, keyword-only
        The categories, in order. Defaults to the sorted union of observed labels. Give it for
        weighted kappa on string categories (``["low", "mid", "high"]`` sorts alphabetically
        otherwise). A label observed in ``a``/``b`` but absent from ``labels`` is an error.

    Returns
    -------
    float
        Kappa in [-1, 1]; ``nan`` when undefined: both raters used one and the same category
        for every item, so expected disagreement is 0 (see the module docstring for the rule).

    Raises
    ------
    ValueError
        Empty input, different lengths, missing labels, mixed label types, unknown ``weights``,
        or labels outside ``labels``.

    Examples
    --------
    >>> cohen_kappa(["yes", "yes", "no", "no"], ["yes", "no", "no", "no"])
    0.5
    >>> round(cohen_kappa([1, 2, 3, 3], [1, 2, 3, 2], weights="quadratic"), 4)
    0.8
    >>> cohen_kappa(["yes", "yes"], ["yes", "yes"])  # no variation: undefined
    nan
    """
    check_choice("weights", weights, WEIGHTS)
    codes_a, codes_b, values = encode_label_pair(a, b, labels)
    if len(values) < 2:  # one category for every item from both raters: 0/0
        return float("nan")
    from sklearn.exceptions import UndefinedMetricWarning
    from sklearn.metrics import cohen_kappa_score

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        kappa = cohen_kappa_score(codes_a, codes_b, labels=np.arange(len(values)), weights=weights)
    return float(kappa)


def _reliability_matrix(
    reliability_data: object, level: Level, value_domain: Sequence[Any] | None
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64] | None]:
    """Numeric raters x units matrix with NaN for missing, plus the numeric value domain."""
    if isinstance(reliability_data, np.ndarray) and reliability_data.dtype.kind in "biuf":
        raw = reliability_data
        if raw.ndim != 2:
            raise ValueError(
                f"reliability_data must be 2-D (rows = raters, columns = units), got shape "
                f"{raw.shape}"
            )
        numeric = raw.astype(np.float64)
        strings = False
    else:
        try:
            rows = [list(row) for row in reliability_data]  # type: ignore[attr-defined]
        except TypeError as exc:
            raise ValueError(
                "reliability_data must be a 2-D table: a sequence of raters, each a sequence "
                "of ratings (one per unit)"
            ) from exc
        if not rows or not any(rows):
            raise ValueError(
                "reliability_data is empty; pass rows = raters, columns = units, with at least "
                "one unit rated by two raters"
            )
        widths = {len(row) for row in rows}
        if len(widths) > 1:
            shown = ", ".join(f"row {i} has {len(r)}" for i, r in enumerate(rows))
            raise ValueError(
                f"reliability_data rows (raters) must all have one entry per unit: {shown}; "
                "use None for a unit a rater did not rate"
            )
        flat = [v for row in rows for v in row]
        present = [v for v in flat if not is_missing(v)]
        strings = any(isinstance(v, str) for v in present)
        if strings and not all(isinstance(v, str) for v in present):
            kinds = sorted({type(v).__name__ for v in present})
            raise ValueError(
                f"reliability_data mixes value types ({', '.join(kinds)}); use all strings "
                "or all numbers (None/NaN for missing)"
            )
        if strings:
            numeric = np.full((len(rows), widths.pop() if widths else 0), np.nan)
            if level in ("interval", "ratio"):
                raise ValueError(
                    f"level={level!r} needs numeric ratings, but reliability_data holds strings; "
                    "convert them to numbers or use level='nominal'/'ordinal'"
                )
            if value_domain is None:
                if level == "ordinal":
                    raise ValueError(
                        "ordinal alpha on string ratings needs their order: pass "
                        "value_domain=[lowest, ..., highest]"
                    )
                domain_list: list[Any] = sorted(set(present))
            else:
                domain_list = list(value_domain)
            index = {v: i for i, v in enumerate(domain_list)}
            unknown = [v for v in set(present) if v not in index]
            if unknown:
                raise ValueError(
                    f"reliability_data has value(s) not in value_domain: "
                    f"{describe_values(unknown)}; add them to value_domain"
                )
            for i, row in enumerate(rows):
                for j, v in enumerate(row):
                    if not is_missing(v):
                        numeric[i, j] = index[v]
            return numeric, np.arange(len(domain_list), dtype=np.float64)
        bad = [v for v in present if isinstance(v, bool) is False and not _is_number(v)]
        if bad:
            raise ValueError(
                f"reliability_data holds non-numeric value(s) {describe_values(bad)}; "
                "use numbers or strings, and None/NaN for missing"
            )
        numeric = np.array(
            [[np.nan if is_missing(v) else float(v) for v in row] for row in rows],
            dtype=np.float64,
        ).reshape(len(rows), -1)
    if numeric.size == 0:
        raise ValueError("reliability_data is empty; pass at least one unit rated by two raters")
    if np.isinf(numeric).any():
        raise ValueError("reliability_data contains infinite values; use finite ratings")
    if numeric.shape[0] < 2:
        raise ValueError(
            f"reliability_data has {numeric.shape[0]} row(s); rows are raters and columns are "
            "units, so at least two rows are needed (transpose it if you passed units as rows)"
        )
    if level == "ratio" and (numeric[~np.isnan(numeric)] < 0).any():
        raise ValueError("level='ratio' needs non-negative ratings; use level='interval'")
    domain = None
    if value_domain is not None:
        domain = np.asarray(value_domain, dtype=np.float64)
        observed = np.unique(numeric[~np.isnan(numeric)])
        outside = observed[~np.isin(observed, domain)]
        if outside.size:
            raise ValueError(
                f"reliability_data has value(s) not in value_domain: "
                f"{describe_values(outside.tolist())}; add them to value_domain"
            )
        if level != "nominal" and (np.diff(domain) <= 0).any():
            raise ValueError("value_domain must be strictly increasing for ordered levels")
    return numeric, domain


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating | np.bool_)


def krippendorff_alpha(
    reliability_data: Sequence[Any] | npt.ArrayLike,
    *,
    level: Level = "nominal",
    value_domain: Sequence[Any] | None = None,
) -> float:
    """Krippendorff's alpha for any number of raters, with missing ratings allowed.

    Parameters
    ----------
    reliability_data : 2-D table
        Rows are raters (coders), columns are units; ``None`` or NaN marks a missing rating.
        Ratings are numbers, or strings for ``level="nominal"`` (and ``"ordinal"`` with
        ``value_domain``).
    level : {"nominal", "ordinal", "interval", "ratio"}, keyword-only
        Level of measurement, i.e. the difference function.
    value_domain : sequence, optional, keyword-only
        All possible values in order. Needed for ordinal strings; for ordinal numbers it also
        lets unused categories count (they change ordinal distances).

    Returns
    -------
    float
        Alpha (1 = perfect reliability, 0 = chance, negative = systematic disagreement).
        ``nan`` when undefined: no unit has two or more ratings (nothing pairable), or all
        pairable ratings have one value (no variation; expected disagreement is 0).

    Raises
    ------
    ValueError
        Empty or ragged data, fewer than two raters, unknown ``level``, strings at the interval
        or ratio level, values outside ``value_domain``, negative values at the ratio level.

    Examples
    --------
    Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C (3 observers,
    12 units with missing values; nominal alpha = 0.743):

    >>> nan = None
    >>> data = [[1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
    ...         [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
    ...         [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
    ...         [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan]]
    >>> round(krippendorff_alpha(data, level="nominal"), 3)
    0.743
    >>> krippendorff_alpha([["a", "a"], ["a", "a"]])  # one value overall: undefined
    nan
    """
    check_choice("level", level, LEVELS)
    numeric, domain = _reliability_matrix(reliability_data, level, value_domain)
    present = ~np.isnan(numeric)
    pairable_units = present.sum(axis=0) >= 2
    if not pairable_units.all():  # units rated once do not enter alpha; drop them up front
        numeric = numeric[:, pairable_units]
    pairable_values = numeric[~np.isnan(numeric)]
    if pairable_values.size < 2 or pairable_values.min() == pairable_values.max():
        return float("nan")
    import krippendorff

    with np.errstate(divide="ignore", invalid="ignore"):
        value = krippendorff.alpha(
            reliability_data=numeric,
            value_domain=domain,
            level_of_measurement=level,
        )
    return float(value)


def _to_verified(
    name: str, values: object, mapping: Mapping[object, bool]
) -> npt.NDArray[np.bool_]:
    """Map binary labels to a boolean "is verified" array; unknown labels are an error."""
    arr = as_1d(name, values)
    if arr.dtype.kind == "b":
        return arr.astype(bool, copy=False)
    if arr.dtype.kind in "iu":
        distinct = np.unique(arr)
        if set(distinct.tolist()) <= {0, 1}:
            return arr == 1
        unknown = [v for v in distinct.tolist() if v not in (0, 1)]
    else:
        if arr.dtype.kind == "f":
            raise ValueError(
                f"{name} holds floats; binary labels must be booleans, 0/1 integers or the "
                f"strings {sorted(k for k in mapping if isinstance(k, str))}"
            )
        try:
            distinct = distinct_values(arr)
        except ValueError:
            distinct = np.asarray(list(dict.fromkeys(arr.tolist())), dtype=object)
        known = [v for v in distinct.tolist() if _lookup(v, mapping) is not None]
        unknown = [v for v in distinct.tolist() if _lookup(v, mapping) is None]
        if not unknown:
            result = np.zeros(arr.shape, dtype=bool)
            for v in known:
                if _lookup(v, mapping):
                    result |= arr == v
            return result
    accepted = ", ".join(repr(k) for k in mapping) + ", True/False, 1/0"
    hint = (
        " ('abstain' is not a binary label: drop abstentions first)"
        if "abstain" in [str(u) for u in unknown]
        else ""
    )
    raise ValueError(
        f"{name} has unknown label(s) {describe_values(unknown)}{hint}; accepted labels are "
        f"{accepted}, or pass mapping={{label: True/False}}"
    )


def _lookup(value: object, mapping: Mapping[object, bool]) -> bool | None:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer) and value in (0, 1):
        return bool(value)
    if isinstance(value, str | int | float | bytes | tuple) and value in mapping:
        return bool(mapping[value])
    return None


def classification_agreement(
    judge: Sequence[Any] | npt.ArrayLike,
    human: Sequence[Any] | npt.ArrayLike,
    *,
    positive: Literal["verified", "not_verified"] = "verified",
    mapping: Mapping[object, bool] | None = None,
) -> dict[str, Any]:
    """Judge-vs-human binary agreement: accuracy, precision, recall, F1, confusion matrix.

    Parameters
    ----------
    judge, human : sequence of binary labels
        One label per item. Accepted: booleans, 0/1 integers, or the strings in
        :data:`BINARY_LABELS` (``"verified"``, ``"not_verified"``, ``"resolved"``,
        ``"not_resolved"``, ``"unresolved"``, ``"correct"``, ``"incorrect"``, ``"pass"``,
        ``"fail"``), matched exactly. Anything else (``"abstain"``, ``"Verified"``, 0.5) is an
        error listing the unknown labels; it is never coerced.
    positive : {"verified", "not_verified"}, keyword-only
        The class precision, recall and F1 are about.
    mapping : mapping, optional, keyword-only
        Extra ``{label: is_verified}`` entries, added to (and overriding) :data:`BINARY_LABELS`.

    Returns
    -------
    dict
        ``accuracy``, ``precision``, ``recall``, ``f1`` (human labels are the truth; precision is
        ``nan`` when the judge predicts no positives, recall when humans have no positives, F1
        when both are undefined), ``positive``, ``confusion``
        (``{"labels": ["verified", "not_verified"], "rows": "human", "columns": "judge",
        "matrix": [[..], [..]]}``; ``matrix[i][j]`` counts items with human label ``labels[i]``
        and judge label ``labels[j]``) and ``counts`` (``n``, ``positives`` = human positives,
        ``predicted_positives`` = judge positives).

    Raises
    ------
    ValueError
        Empty input, different lengths, unknown labels or an unknown ``positive``.

    Examples
    --------
    >>> r = classification_agreement(
    ...     ["verified", "verified", "not_verified", "verified"], [True, False, False, True])
    >>> r["accuracy"], r["precision"], r["recall"]
    (0.75, 0.6666666666666666, 1.0)
    >>> r["confusion"]["matrix"]
    [[2, 0], [1, 1]]
    """
    check_choice("positive", positive, POSITIVE_CLASSES)
    table: dict[object, bool] = dict(BINARY_LABELS)
    if mapping is not None:
        table.update({k: bool(v) for k, v in mapping.items()})
    judge_v = _to_verified("judge", judge, table)
    human_v = _to_verified("human", human, table)
    n = check_same_length(judge=judge_v, human=human_v)
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    matrix = confusion_matrix(human_v, judge_v, labels=[True, False])
    pos = positive == "verified"
    precision, recall, f1, _ = precision_recall_fscore_support(
        human_v, judge_v, labels=[pos], pos_label=pos, average="binary", zero_division=np.nan
    )
    is_pos_h = human_v if pos else ~human_v
    is_pos_j = judge_v if pos else ~judge_v
    return {
        "accuracy": float(np.trace(matrix) / n),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "positive": positive,
        "confusion": {
            "labels": ["verified", "not_verified"],
            "rows": "human",
            "columns": "judge",
            "matrix": matrix.astype(int).tolist(),
        },
        "counts": {
            "n": int(n),
            "positives": int(is_pos_h.sum()),
            "predicted_positives": int(is_pos_j.sum()),
        },
    }


def human_agreement(
    labels_by_unit: Mapping[str, Sequence[Any]],
    *,
    level: Level = "nominal",
    value_domain: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """Human-vs-human agreement (the ceiling a judge can be expected to reach).

    Parameters
    ----------
    labels_by_unit : mapping of unit id -> sequence of labels
        The human labels of each unit; ``None``/NaN entries are skipped. Units with fewer than
        two labels are ignored. For pairwise kappa the *i*-th label of every unit is taken to
        come from rater *i* (keep the rater order consistent across units).
    level : {"nominal", "ordinal", "interval", "ratio"}, keyword-only
        Level of measurement for alpha; it also picks the kappa weights: nominal -> unweighted,
        ordinal -> linear, interval/ratio -> quadratic.
    value_domain : sequence, optional, keyword-only
        Passed to :func:`krippendorff_alpha` (needed for ordinal string labels).

    Returns
    -------
    dict
        ``alpha`` (Krippendorff, all raters), ``kappa`` (mean pairwise Cohen's kappa over rater
        pairs where it is defined; ``nan`` if none is), ``kappa_weights``, ``pairwise`` (one
        entry per rater pair: ``raters``, ``kappa``, ``percent_agreement``, ``n_units``),
        ``percent_agreement`` (share of agreeing label pairs within a unit, averaged over
        units), ``n_units`` (units with two or more labels), ``n_units_total``, ``n_raters``,
        ``level``.

    Raises
    ------
    ValueError
        Empty mapping, no unit with two labels, or the errors of :func:`krippendorff_alpha`.

    Examples
    --------
    >>> r = human_agreement({"u1": ["a", "a"], "u2": ["b", "b"], "u3": ["a", "b"], "u4": ["x"]})
    >>> r["n_units"], r["percent_agreement"], round(r["kappa"], 3)
    (3, 0.6666666666666666, 0.4)
    """
    check_choice("level", level, LEVELS)
    if not isinstance(labels_by_unit, Mapping):
        raise ValueError(
            "labels_by_unit must be a mapping {unit_id: [label, label, ...]}, got "
            f"{type(labels_by_unit).__name__}"
        )
    if not labels_by_unit:
        raise ValueError("labels_by_unit is empty; pass at least one unit with two human labels")
    rows: list[list[Any]] = []
    for unit, labels in labels_by_unit.items():
        if isinstance(labels, str | bytes) or not isinstance(labels, Sequence | np.ndarray):
            raise ValueError(
                f"labels_by_unit[{unit!r}] must be a sequence of labels, got {labels!r}"
            )
        rows.append(list(labels))
    used = [r for r in rows if sum(not is_missing(v) for v in r) >= 2]
    if not used:
        raise ValueError(
            "no unit in labels_by_unit has two or more human labels; human agreement needs "
            "units labelled by at least two people"
        )
    n_raters = max(len(r) for r in used)
    matrix = [[r[i] if i < len(r) else None for r in used] for i in range(n_raters)]
    alpha = krippendorff_alpha(matrix, level=level, value_domain=value_domain)
    weights: Weights = (
        None if level == "nominal" else "linear" if level == "ordinal" else "quadratic"
    )
    kappa_labels = _kappa_labels(used, value_domain)
    pairwise = []
    for i in range(n_raters):
        for j in range(i + 1, n_raters):
            both = [
                (x, y)
                for x, y in zip(matrix[i], matrix[j], strict=True)
                if not is_missing(x) and not is_missing(y)
            ]
            if not both:
                continue
            xs, ys = [x for x, _ in both], [y for _, y in both]
            pairwise.append(
                {
                    "raters": [i, j],
                    "kappa": cohen_kappa(xs, ys, weights=weights, labels=kappa_labels),
                    "percent_agreement": sum(x == y for x, y in both) / len(both),
                    "n_units": len(both),
                }
            )
    kappas = [p["kappa"] for p in pairwise if not np.isnan(p["kappa"])]
    per_unit = []
    for r in used:
        present = [v for v in r if not is_missing(v)]
        m = len(present)
        agree = sum(present[x] == present[y] for x in range(m) for y in range(x + 1, m))
        per_unit.append(agree / (m * (m - 1) / 2))
    return {
        "level": level,
        "alpha": alpha,
        "kappa": float(np.mean(kappas)) if kappas else float("nan"),
        "kappa_weights": weights,
        "pairwise": pairwise,
        "percent_agreement": float(np.mean(per_unit)),
        "n_units": len(used),
        "n_units_total": len(rows),
        "n_raters": n_raters,
    }


def _kappa_labels(rows: list[list[Any]], value_domain: Sequence[Any] | None) -> list[Any] | None:
    """Category order for weighted pairwise kappa: the value domain, else all observed values."""
    if value_domain is not None:
        return list(value_domain)
    present = {v for r in rows for v in r if not is_missing(v)}
    try:
        return sorted(present)
    except TypeError:
        return None
