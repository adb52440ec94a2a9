"""Verified counts corrected for known judge error (Rogan-Gladen), with a bootstrap interval.

A judge that says "verified" for a fraction ``apparent`` of outcomes, with true positive rate
``tpr`` (sensitivity) and false positive rate ``fpr`` (1 - specificity) measured against human
labels, implies a true verified fraction of

    prevalence = (apparent + specificity - 1) / (sensitivity + specificity - 1)
               = (apparent - fpr) / (tpr - fpr)

(Rogan W.J., Gladen B., "Estimating prevalence from the results of a screening test",
Am. J. Epidemiol. 107(1):71-76, 1978). The denominator ``J = tpr - fpr`` is Youden's index.

Rules:

* **Undefined** when ``J <= 0``: the judge says "verified" at least as often for outcomes humans
  call not verified as for verified ones, so its verdicts carry no information about the true
  count. :class:`UndefinedCorrection` is raised; no number is returned.
* **Clipped** to ``[0, 1]``: an apparent rate below ``fpr`` (fewer verdicts than false positives
  alone would produce) gives a negative estimate, one above ``tpr`` an estimate above 1. Both mean
  the measured rates do not fit this population exactly (sampling error, or a population unlike
  the labelled one); the estimate is set to the nearest bound, ``clipped`` is set and the
  unclipped value is kept in ``unclipped`` so nobody mistakes it for a precise answer.
* **Abstentions** are not classifications: callers pass counts over decided outcomes (verified
  plus not verified) and labelled pairs where the judge decided.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from calibration._validation import check_draws, check_level, rng_from

POSITIVE = "verified"
NEGATIVE = "not_verified"


class UndefinedCorrection(ValueError):
    """The correction has no meaning: the judge's TPR does not exceed its FPR."""


@dataclass(frozen=True)
class ErrorRates:
    """The judge's error rates measured on labelled outcomes (abstentions excluded)."""

    tpr: float
    fpr: float
    n_positive: int
    n_negative: int

    @property
    def sensitivity(self) -> float:
        return self.tpr

    @property
    def specificity(self) -> float:
        return 1.0 - self.fpr


@dataclass(frozen=True)
class CorrectedCount:
    """A raw verified count and its Rogan-Gladen correction.

    ``corrected`` is ``prevalence * n_total`` (a float: an estimate, not a tally). ``ci`` is the
    interval on the corrected count when one was computed; ``ci_reason`` says why it is missing.
    """

    n_total: int
    raw_verified: int
    apparent: float
    tpr: float
    fpr: float
    prevalence: float
    unclipped: float
    clipped: bool
    corrected: float
    ci: tuple[float, float] | None = None
    level: float | None = None
    n_boot: int = 0
    n_undefined: int = 0
    n_labelled: int = 0
    ci_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ci"] = list(self.ci) if self.ci is not None else None
        return out


def rogan_gladen(apparent: float, *, sensitivity: float, specificity: float) -> float:
    """Unclipped Rogan-Gladen estimate of the true prevalence.

    Parameters
    ----------
    apparent : float
        Fraction of outcomes the judge called verified, in ``[0, 1]``.
    sensitivity, specificity : float
        The judge's TPR and ``1 - FPR``, each in ``[0, 1]``.

    Returns
    -------
    float
        ``(apparent + specificity - 1) / (sensitivity + specificity - 1)``; may fall outside
        ``[0, 1]`` (see :func:`corrected_verified` for the clipping rule).

    Raises
    ------
    UndefinedCorrection
        When ``sensitivity + specificity - 1 <= 0``.

    Examples
    --------
    The epiR ``epi.prev`` example: 23 of 150 cows test positive on a test with sensitivity 0.96
    and specificity 0.89; the true prevalence is about 5.1 per 100.

    >>> round(rogan_gladen(23 / 150, sensitivity=0.96, specificity=0.89), 3)
    0.051
    >>> rogan_gladen(0.3, sensitivity=0.5, specificity=0.5)
    Traceback (most recent call last):
    ...
    calibration.correction.UndefinedCorrection: cannot correct: ...
    """
    for name, value in (
        ("apparent", apparent),
        ("sensitivity", sensitivity),
        ("specificity", specificity),
    ):
        _check_unit(name, value)
    youden = sensitivity + specificity - 1.0
    if youden <= 0:
        raise UndefinedCorrection(
            f"cannot correct: sensitivity + specificity - 1 = {youden:.3g} <= 0 "
            f"(TPR {sensitivity:.3g}, FPR {1 - specificity:.3g}); the judge's 'verified' is no "
            "more likely for truly verified outcomes than for the rest, so its count says nothing "
            "about the true count. Improve the judge or label more outcomes."
        )
    return (apparent + specificity - 1.0) / youden


def error_rates(
    judge: Sequence[object], human: Sequence[object], *, positive: str = POSITIVE
) -> ErrorRates:
    """Measure the judge's TPR and FPR against human labels.

    Parameters
    ----------
    judge : sequence
        Judge decisions per labelled outcome: ``"verified"``, ``"not_verified"`` or
        ``"abstain"`` (abstentions are dropped together with their labels), or booleans.
    human : sequence
        Human labels for the same outcomes: ``"verified"``/``"not_verified"`` or booleans.
    positive : str
        The decision that counts as positive.

    Returns
    -------
    ErrorRates

    Raises
    ------
    ValueError
        Different lengths, unknown values, or no labelled positive or negative outcomes.

    Examples
    --------
    >>> r = error_rates(["verified", "verified", "not_verified", "verified"],
    ...                 [True, True, False, False])
    >>> (r.tpr, r.fpr)
    (1.0, 0.5)
    """
    j, h = _binary_pairs(judge, human, positive=positive)
    n_pos = int(h.sum())
    n_neg = int((~h).sum())
    if n_pos == 0 or n_neg == 0:
        missing = "verified" if n_pos == 0 else "not verified"
        raise ValueError(
            f"no labelled outcome is {missing}, so the judge's "
            f"{'TPR' if n_pos == 0 else 'FPR'} cannot be measured; label outcomes of both kinds"
        )
    return ErrorRates(
        tpr=float((j & h).sum() / n_pos),
        fpr=float((j & ~h).sum() / n_neg),
        n_positive=n_pos,
        n_negative=n_neg,
    )


def corrected_verified(n_verified: int, n_total: int, *, tpr: float, fpr: float) -> CorrectedCount:
    """Correct a raw verified count for the judge's known TPR and FPR.

    Parameters
    ----------
    n_verified : int
        Outcomes the judge called verified.
    n_total : int
        Outcomes the judge decided (verified + not verified); abstentions excluded.
    tpr, fpr : float
        True and false positive rates of the judge, measured on labelled outcomes.

    Returns
    -------
    CorrectedCount
        ``prevalence`` clipped to ``[0, 1]`` (``clipped`` says whether it was) and
        ``corrected = prevalence * n_total``.

    Raises
    ------
    UndefinedCorrection
        When ``tpr <= fpr``.
    ValueError
        Counts out of range.

    Examples
    --------
    >>> c = corrected_verified(23, 150, tpr=0.96, fpr=0.11)
    >>> round(c.prevalence, 3), round(c.corrected, 2)
    (0.051, 7.65)
    >>> c = corrected_verified(2, 100, tpr=0.9, fpr=0.05)
    >>> c.prevalence, c.clipped, round(c.unclipped, 4)
    (0.0, True, -0.0353)
    """
    _check_counts(n_verified, n_total)
    _check_unit("tpr", tpr)
    _check_unit("fpr", fpr)
    apparent = n_verified / n_total
    raw = rogan_gladen(apparent, sensitivity=tpr, specificity=1.0 - fpr)
    prevalence = min(1.0, max(0.0, raw))
    return CorrectedCount(
        n_total=n_total,
        raw_verified=n_verified,
        apparent=apparent,
        tpr=float(tpr),
        fpr=float(fpr),
        prevalence=prevalence,
        unclipped=raw,
        clipped=prevalence != raw,
        corrected=prevalence * n_total,
    )


def corrected_count_ci(
    judge: Sequence[object],
    human: Sequence[object],
    *,
    n_verified: int,
    n_total: int,
    n: int = 1000,
    level: float = 0.95,
    seed: int | np.random.Generator | None = None,
    positive: str = POSITIVE,
) -> CorrectedCount:
    """Corrected verified count with a bootstrap interval.

    Each of the ``n`` replicates resamples the labelled calibration pairs with replacement (new
    TPR and FPR) and, independently, the apparent rate (``Binomial(n_total, apparent) /
    n_total``), then applies the clipped Rogan-Gladen correction. The interval is the percentile
    interval of the replicates, times ``n_total``. A replicate whose resampled TPR does not
    exceed its FPR (or that lacks a positive or negative label) is *undefined*; when more than
    ``(1 - level) / 2`` of the replicates are undefined the interval is not reported
    (``ci is None``, ``ci_reason`` says why) because its tail would be unknowable; otherwise
    undefined replicates are dropped and counted in ``n_undefined``.

    Parameters
    ----------
    judge, human : sequence
        Judge decisions and human labels on the labelled calibration set (see
        :func:`error_rates`).
    n_verified, n_total : int
        Verified and decided counts over the population being counted.
    n : int
        Bootstrap replicates.
    level : float
        Confidence level of the interval.
    seed : int, numpy Generator or None
        For reproducible intervals.
    positive : str
        The decision that counts as positive.

    Returns
    -------
    CorrectedCount

    Raises
    ------
    UndefinedCorrection
        When the point estimate itself is undefined (measured TPR <= FPR).

    Examples
    --------
    >>> judge = ["verified"] * 90 + ["not_verified"] * 10 + ["verified"] * 5 + ["not_verified"] * 95
    >>> human = [True] * 100 + [False] * 100
    >>> c = corrected_count_ci(judge, human, n_verified=500, n_total=1000, n=500, seed=1)
    >>> round(c.corrected, 1)
    529.4
    >>> c.ci[0] < c.corrected < c.ci[1]
    True
    """
    _check_counts(n_verified, n_total)
    n = check_draws(n)
    level = check_level(level)
    rng = rng_from(seed)
    rates = error_rates(judge, human, positive=positive)
    point = corrected_verified(n_verified, n_total, tpr=rates.tpr, fpr=rates.fpr)
    j, h = _binary_pairs(judge, human, positive=positive)
    m = j.size

    prevalences = np.empty(n)
    undefined = np.zeros(n, dtype=bool)
    chunk = max(1, 2_000_000 // m)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        idx = rng.integers(0, m, size=(stop - start, m))
        hj, jj = h[idx], j[idx]
        n_pos = hj.sum(axis=1)
        n_neg = m - n_pos
        with np.errstate(divide="ignore", invalid="ignore"):
            tpr = (hj & jj).sum(axis=1) / n_pos
            fpr = (~hj & jj).sum(axis=1) / n_neg
        apparent = rng.binomial(n_total, n_verified / n_total, size=stop - start) / n_total
        youden = tpr - fpr
        bad = (n_pos == 0) | (n_neg == 0) | ~(youden > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            est = np.clip((apparent - fpr) / youden, 0.0, 1.0)
        prevalences[start:stop] = est
        undefined[start:stop] = bad

    n_undefined = int(undefined.sum())
    tail = (1.0 - level) / 2.0
    ci: tuple[float, float] | None
    reason: str | None = None
    if n_undefined > tail * n:
        ci = None
        reason = (
            f"{n_undefined} of {n} bootstrap replicates had TPR <= FPR, more than the "
            f"{tail:.1%} tail the interval may lose; label more outcomes (now {m})"
        )
    else:
        good = prevalences[~undefined]
        lo, hi = np.quantile(good, [tail, 1.0 - tail])
        ci = (float(lo) * n_total, float(hi) * n_total)
    return CorrectedCount(
        **{
            **asdict(point),
            "ci": ci,
            "level": level,
            "n_boot": n,
            "n_undefined": n_undefined,
            "n_labelled": m,
            "ci_reason": reason,
        }
    )


def _binary_pairs(
    judge: Sequence[object], human: Sequence[object], *, positive: str
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    if isinstance(judge, str | bytes) or isinstance(human, str | bytes):
        raise ValueError("judge and human must be sequences of decisions, not single strings")
    if len(judge) != len(human):
        raise ValueError(
            f"judge has {len(judge)} decisions but human has {len(human)} labels; "
            "pair them up outcome by outcome"
        )
    j_out: list[bool] = []
    h_out: list[bool] = []
    for i, (jv, hv) in enumerate(zip(judge, human, strict=True)):
        if jv == "abstain":
            continue
        j_out.append(_as_bool("judge", i, jv, positive))
        h_out.append(_as_bool("human", i, hv, positive))
    if not j_out:
        raise ValueError("no labelled outcome has a judge decision (all abstained or none given)")
    return np.array(j_out, dtype=bool), np.array(h_out, dtype=bool)


def _as_bool(name: str, index: int, value: object, positive: str) -> bool:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if value == positive:
        return True
    if value in (NEGATIVE, "not_" + positive):
        return False
    raise ValueError(
        f"{name}[{index}] is {value!r}; use {positive!r}, {NEGATIVE!r} or a boolean"
        + (" ('abstain' is allowed for the judge only)" if value == "abstain" else "")
    )


def _check_unit(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")


def _check_counts(n_verified: object, n_total: object) -> None:
    for name, value in (("n_verified", n_verified), ("n_total", n_total)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or int(value) < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    assert isinstance(n_verified, int | np.integer) and isinstance(n_total, int | np.integer)
    if n_total == 0:
        raise ValueError("n_total is 0: there are no decided outcomes to count")
    if n_verified > n_total:
        raise ValueError(f"n_verified ({n_verified}) cannot exceed n_total ({n_total})")
