"""Drift: judge-human agreement over time and verdict-rate shift.

Inputs are :class:`LabelledRecord` values: one per verdict, with the time it was made, the
panel's decision and (when a human labelled the outcome) the human label.

Windows
    Agreement is computed over windows of labelled outcomes in time order, either by **count**
    (``window=50``: consecutive blocks of 50 labelled pairs, cut from the *newest* backwards so the
    latest window is always full; a remainder of fewer than ``window`` of the oldest pairs is
    left out) or by **days** (``days=7``: periods ``(until - k*days, until - (k-1)*days]``
    ending at ``until``, by default the newest record's time). Windows never overlap, so the
    reference and latest windows are independent samples. A pair is a labelled record whose
    judge did not abstain; abstentions go to human review and are counted per window but do not
    enter agreement.

Change test
    Agreement rates (share of pairs where the judge's decision equals the human label) of the
    *reference* window (the oldest with at least ``min_pairs`` pairs) and the *latest* window
    are compared with a pooled two-proportion z-test: with agreements ``a1/n1`` and ``a2/n2``
    and pooled ``p = (a1 + a2) / (n1 + n2)``,
    ``z = (a2/n2 - a1/n1) / sqrt(p (1 - p) (1/n1 + 1/n2))``. An alert fires when the p-value is
    below ``alpha``.

False-alarm rate
    With no drift, each pair agrees independently with the same probability in both windows, so
    by the central limit theorem (and consistency of the pooled variance) ``z`` is approximately
    standard normal and ``P(|z| > z_{1-alpha/2}) = alpha``: one evaluation raises a false alarm
    with probability about ``alpha`` (one-sided ``"decrease"`` test: also ``alpha``). The test
    suite checks this by simulation. Re-running the check on k *disjoint* latest windows raises
    at least one false alarm with probability ``1 - (1 - alpha)^k``, hence the default
    ``alpha = 0.01``.

Verdict-rate shift (PSI)
    The population stability index between the decision mix (verified / not_verified /
    abstain, over *all* verdicts, labelled or not) in the reference and latest periods:
    ``PSI = sum_i (q_i - p_i) ln(q_i / p_i)``. A share of 0 is replaced by ``epsilon`` (default
    1e-4) before taking logs, so a decision that appears or vanishes counts as a large shift
    instead of dividing by zero. Usual reading: < 0.1 stable, 0.1-0.25 moderate shift (a
    warning), >= 0.25 major shift (an alert). With no shift, ``PSI ~ (1/n1 + 1/n2) chi2(k-1)``
    approximately, so small periods cross 0.1 by chance; the report states that chance and PSI
    is only judged when both periods hold ``min_verdicts`` verdicts.

Canary re-grade
    Lives in :mod:`calibration.canary` (:func:`~calibration.canary.needs_canary_regrade`,
    :func:`~calibration.canary.canary_check`); both are re-exported here for compatibility.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

# Canary re-grades moved to calibration.canary; re-exported so existing imports keep working.
from calibration.canary import CanaryResult as CanaryResult
from calibration.canary import CanaryTrigger as CanaryTrigger
from calibration.canary import canary_check as canary_check
from calibration.canary import needs_canary_regrade as needs_canary_regrade

if TYPE_CHECKING:
    from calibration.join import JoinedUnit

DECISIONS = ("verified", "not_verified", "abstain")
LABELS = ("verified", "not_verified")
Alternative = Literal["two-sided", "decrease"]


@dataclass(frozen=True)
class LabelledRecord:
    """One verdict and, if the outcome was labelled, the human label.

    Parameters
    ----------
    outcome_id : str
        The outcome's id.
    at : datetime
        When the verdict was made (naive datetimes are taken as UTC).
    judge : str
        The panel's decision: ``verified``, ``not_verified`` or ``abstain``.
    human : str, bool or None
        The human label (``verified``/``not_verified`` or ``True``/``False``); ``None`` when
        unlabelled.
    labelled_at : datetime or None
        When the human label was given; the calibration gate windows on this (falling back to
        ``at``).

    Examples
    --------
    >>> r = LabelledRecord("T-1", datetime(2026, 3, 1), "verified", human=True)
    >>> r.human, r.at.tzinfo is not None, r.agrees
    ('verified', True, True)
    """

    outcome_id: str
    at: datetime
    judge: str
    human: str | bool | None = None  # stored as "verified" / "not_verified" / None
    labelled_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.judge not in DECISIONS:
            raise ValueError(
                f"outcome {self.outcome_id!r}: judge decision {self.judge!r} is not one of "
                f"{', '.join(DECISIONS)}"
            )
        human: object = self.human
        if isinstance(human, bool):
            human = "verified" if human else "not_verified"
        if human is not None and human not in LABELS:
            raise ValueError(
                f"outcome {self.outcome_id!r}: human label {self.human!r} is not one of "
                f"{', '.join(LABELS)}, a boolean or None"
            )
        object.__setattr__(self, "human", human)
        object.__setattr__(self, "at", _utc(self.at, f"outcome {self.outcome_id!r}: at"))
        if self.labelled_at is not None:
            object.__setattr__(
                self,
                "labelled_at",
                _utc(self.labelled_at, f"outcome {self.outcome_id!r}: labelled_at"),
            )

    @classmethod
    def of_unit(cls, unit: JoinedUnit, *, at: datetime) -> LabelledRecord:
        """The record of a verdict joined with its reference label (``calibration.join``),
        dated ``at`` (the label's time, as drift and the gate window on it)."""
        return cls(
            outcome_id=unit.outcome_id,
            at=at,
            judge=unit.verdict.decision,
            human="verified" if unit.reference else "not_verified",
            labelled_at=at,
        )

    @property
    def is_pair(self) -> bool:
        """Labelled and decided (the judge did not abstain)."""
        return self.human is not None and self.judge != "abstain"

    @property
    def agrees(self) -> bool | None:
        """Whether judge and human agree; ``None`` unless :attr:`is_pair`."""
        return self.judge == self.human if self.is_pair else None


@dataclass(frozen=True)
class Window:
    """Agreement and decision mix in one window.

    ``start``/``end`` bound the period: for count windows the times of its first and last
    pair; for day windows the period ``(start, end]``. ``verdicts`` counts every decision made
    in the period, labelled or not.
    """

    index: int
    start: datetime
    end: datetime
    n: int
    agree: int
    accuracy: float | None
    kappa: float | None
    n_abstain: int
    verdicts: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["start"] = self.start.isoformat()
        out["end"] = self.end.isoformat()
        return out


@dataclass(frozen=True)
class DriftReport:
    """Windows, the change test between the reference and latest window, PSI, and the alert."""

    windows: list[Window]
    reference: int | None
    latest: int | None
    statistic: float | None
    p_value: float | None
    alpha: float
    alternative: str
    psi: float | None
    psi_chance: float | None
    alert: bool
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    method: str = "pooled two-proportion z-test on agreement rate"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["windows"] = [w.to_dict() for w in self.windows]
        return out


# --------------------------------------------------------------------------- statistics


def two_proportion_ztest(
    k1: int, n1: int, k2: int, n2: int, *, alternative: Alternative = "two-sided"
) -> tuple[float, float]:
    """Pooled two-proportion z-test of ``k2/n2`` against ``k1/n1``.

    Parameters
    ----------
    k1, n1 : int
        Successes and trials in the reference sample.
    k2, n2 : int
        Successes and trials in the new sample.
    alternative : {"two-sided", "decrease"}
        ``"decrease"`` tests whether the new proportion is lower.

    Returns
    -------
    (z, p_value) : tuple of float
        ``z > 0`` when the new proportion is higher. When both samples are all successes or all
        failures the pooled variance is 0 and the result is ``(0.0, 1.0)``: no evidence of change.

    Examples
    --------
    >>> z, p = two_proportion_ztest(90, 100, 75, 100)
    >>> round(z, 2), round(p, 4)
    (-2.79, 0.0052)
    >>> round(two_proportion_ztest(90, 100, 75, 100, alternative="decrease")[1], 4)
    0.0026
    """
    for name, k, n in (("1", k1, n1), ("2", k2, n2)):
        if n < 1 or not 0 <= k <= n:
            raise ValueError(f"sample {name}: need 0 <= k <= n and n >= 1, got k={k}, n={n}")
    if alternative not in ("two-sided", "decrease"):
        raise ValueError(f"alternative must be 'two-sided' or 'decrease', got {alternative!r}")
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 0.0, 1.0
    z = (k2 / n2 - k1 / n1) / se
    # normal tail probabilities via erfc (exact to double precision, no scipy call per test)
    if alternative == "two-sided":
        p = math.erfc(abs(z) / math.sqrt(2.0))
    else:
        p = 0.5 * math.erfc(-z / math.sqrt(2.0))
    return z, min(1.0, p)


def psi(
    reference: Mapping[str, int],
    current: Mapping[str, int],
    *,
    epsilon: float = 1e-4,
) -> float:
    """Population stability index between two categorical count tables.

    Parameters
    ----------
    reference, current : mapping of category -> count
        Counts per category (e.g. per decision). Categories missing from one side count 0.
    epsilon : float
        Share substituted for an empty category before taking logs (see module docs).

    Returns
    -------
    float
        ``sum (q - p) ln(q / p)`` over categories; 0 for identical mixes.

    Examples
    --------
    >>> round(psi({"verified": 60, "not_verified": 40}, {"verified": 40, "not_verified": 60}), 4)
    0.1622
    >>> psi({"verified": 5, "not_verified": 5}, {"verified": 50, "not_verified": 50})
    0.0
    """
    if not 0 < epsilon < 1:
        raise ValueError(f"epsilon must be in (0, 1), got {epsilon!r}")
    n_ref = sum(reference.values())
    n_cur = sum(current.values())
    if n_ref <= 0 or n_cur <= 0:
        raise ValueError(
            f"both periods need at least one verdict (reference has {n_ref}, current {n_cur})"
        )
    if any(v < 0 for v in (*reference.values(), *current.values())):
        raise ValueError("counts must be non-negative")
    total = 0.0
    for key in sorted(set(reference) | set(current)):
        p = max(reference.get(key, 0) / n_ref, epsilon)
        q = max(current.get(key, 0) / n_cur, epsilon)
        total += (q - p) * math.log(q / p)
    return total


def psi_chance(threshold: float, n_reference: int, n_current: int, *, categories: int) -> float:
    """Approximate chance that PSI reaches ``threshold`` with no shift at all.

    Uses ``PSI ~ (1/n1 + 1/n2) chi2(categories - 1)`` (valid when no category is rare).

    Examples
    --------
    >>> round(psi_chance(0.1, 100, 100, categories=3), 3)
    0.082
    """
    if categories < 2 or n_reference < 1 or n_current < 1:
        raise ValueError("need at least 2 categories and 1 verdict in each period")
    scale = 1 / n_reference + 1 / n_current
    from scipy import stats

    return float(stats.chi2.sf(threshold / scale, categories - 1))


# --------------------------------------------------------------------------- windows


def agreement_windows(
    records: Iterable[LabelledRecord],
    *,
    window: int | None = None,
    days: float | None = None,
    until: datetime | None = None,
) -> list[Window]:
    """Split labelled records into non-overlapping windows, oldest first (see module docs).

    Parameters
    ----------
    records : iterable of LabelledRecord
        Verdicts, labelled or not, in any order.
    window : int, optional
        Pairs per window (count windows). Default 50 when ``days`` is not given.
    days : float, optional
        Window length in days (time windows). Give ``window`` or ``days``, not both.
    until : datetime, optional
        End of the newest time window (default: the newest record). Ignored for count windows.

    Returns
    -------
    list of Window

    Examples
    --------
    >>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
    >>> recs = [LabelledRecord(f"T{i}", t0 + timedelta(hours=i), "verified",
    ...                        human=i % 4 != 0) for i in range(10)]
    >>> [(w.n, w.agree) for w in agreement_windows(recs, window=4)]
    [(4, 3), (4, 3)]
    """
    size, span = _window_spec(window, days)
    recs = sorted(records, key=lambda r: r.at)
    if not recs:
        return []
    if span is not None:
        return _day_windows(recs, span, until)
    pairs = [r for r in recs if r.is_pair]
    chunks: list[list[LabelledRecord]] = []
    end = len(pairs)
    while end - size >= 0:
        chunks.append(pairs[end - size : end])
        end -= size
    chunks.reverse()
    out: list[Window] = []
    prev_end: datetime | None = None
    for i, chunk in enumerate(chunks):
        start, stop = chunk[0].at, chunk[-1].at
        period = [
            r
            for r in recs
            if r.at <= stop and (r.at >= start if prev_end is None else r.at > prev_end)
        ]
        out.append(_make_window(i, start, stop, chunk, period))
        prev_end = stop
    return out


def drift_report(
    records: Iterable[LabelledRecord],
    *,
    window: int | None = None,
    days: float | None = None,
    until: datetime | None = None,
    alpha: float = 0.01,
    alternative: Alternative = "two-sided",
    min_pairs: int = 20,
    min_verdicts: int = 100,
    psi_warn: float = 0.1,
    psi_alert: float = 0.25,
    epsilon: float = 1e-4,
) -> DriftReport:
    """Agreement over windows, the change test, PSI, and whether to alert.

    Parameters
    ----------
    records : iterable of LabelledRecord
        Verdicts with their human labels where available.
    window, days, until
        Windowing, see :func:`agreement_windows`.
    alpha : float
        Significance level of the change test; also its false-alarm rate.
    alternative : {"two-sided", "decrease"}
        Alert on any change in agreement, or only on a decrease.
    min_pairs : int
        Fewest pairs a window needs to serve as reference or latest window.
    min_verdicts : int
        Fewest verdicts each period needs before PSI is judged.
    psi_warn, psi_alert : float
        PSI thresholds for a warning and an alert.
    epsilon : float
        Share used for an empty decision category in PSI.

    Returns
    -------
    DriftReport
        ``alert`` is true when the agreement change is significant or PSI >= ``psi_alert``;
        ``reasons`` says why, ``warnings`` lists weaker findings and why a test was skipped.

    Examples
    --------
    >>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
    >>> good = [LabelledRecord(f"A{i}", t0 + timedelta(hours=i), "verified", human=i % 10 != 0)
    ...         for i in range(100)]
    >>> bad = [LabelledRecord(f"B{i}", t0 + timedelta(hours=100 + i), "verified",
    ...                       human=i % 2 == 0) for i in range(100)]
    >>> rep = drift_report(good + bad, window=100)
    >>> rep.alert, round(rep.p_value, 6) < 0.01
    (True, True)
    """
    _window_spec(window, days)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), e.g. 0.01; got {alpha!r}")
    if alternative not in ("two-sided", "decrease"):
        raise ValueError(f"alternative must be 'two-sided' or 'decrease', got {alternative!r}")
    if min_pairs < 2:
        raise ValueError(f"min_pairs must be at least 2, got {min_pairs!r}")
    if min_verdicts < 1:
        raise ValueError(f"min_verdicts must be at least 1, got {min_verdicts!r}")
    if not 0 < psi_warn <= psi_alert:
        raise ValueError(f"need 0 < psi_warn <= psi_alert, got {psi_warn!r} and {psi_alert!r}")

    windows = agreement_windows(records, window=window, days=days, until=until)
    reasons: list[str] = []
    warnings: list[str] = []
    usable = [w.index for w in windows if w.n >= min_pairs]
    latest = windows[-1].index if windows else None
    reference = usable[0] if usable else None
    base = DriftReport(
        windows=windows,
        reference=reference,
        latest=latest,
        statistic=None,
        p_value=None,
        alpha=alpha,
        alternative=alternative,
        psi=None,
        psi_chance=None,
        alert=False,
        reasons=reasons,
        warnings=warnings,
    )
    if latest is None or reference is None or reference == latest:
        have = len(windows)
        warnings.append(
            f"no change test: need two windows with at least {min_pairs} labelled, decided "
            f"outcomes each; found {have} window(s), {len(usable)} large enough"
        )
        return base
    ref_w, cur_w = windows[reference], windows[latest]
    if cur_w.n < min_pairs:
        warnings.append(
            f"no change test: the latest window has only {cur_w.n} labelled, decided outcomes; "
            f"need {min_pairs}"
        )
        return _with(base, reference=reference)

    z, p = two_proportion_ztest(ref_w.agree, ref_w.n, cur_w.agree, cur_w.n, alternative=alternative)
    drop = "fell" if cur_w.agree / cur_w.n < ref_w.agree / ref_w.n else "rose"
    if p < alpha:
        reasons.append(
            f"agreement {drop} from {ref_w.agree / ref_w.n:.3f} (window {reference}, n={ref_w.n}) "
            f"to {cur_w.agree / cur_w.n:.3f} (latest window, n={cur_w.n}); z={z:.2f}, "
            f"p={p:.3g} < alpha {alpha}"
        )

    psi_value: float | None = None
    chance: float | None = None
    n_ref, n_cur = sum(ref_w.verdicts.values()), sum(cur_w.verdicts.values())
    if min(n_ref, n_cur) < min_verdicts:
        warnings.append(
            f"verdict mix not judged: {n_ref} and {n_cur} verdicts in the reference and latest "
            f"periods; PSI needs {min_verdicts} in each"
        )
    else:
        psi_value = psi(ref_w.verdicts, cur_w.verdicts, epsilon=epsilon)
        cats = max(2, len({k for k, v in (ref_w.verdicts | cur_w.verdicts).items() if v}))
        chance = psi_chance(psi_warn, n_ref, n_cur, categories=cats)
        mix = _mix_change(ref_w.verdicts, cur_w.verdicts)
        if psi_value >= psi_alert:
            reasons.append(f"verdict mix shifted: PSI {psi_value:.3f} >= {psi_alert} ({mix})")
        elif psi_value >= psi_warn:
            warnings.append(
                f"moderate verdict-mix shift: PSI {psi_value:.3f} >= {psi_warn} ({mix}); about "
                f"{chance:.1%} of periods this size reach {psi_warn} with no shift"
            )
    return _with(
        base,
        statistic=z,
        p_value=p,
        psi=psi_value,
        psi_chance=chance,
        alert=bool(reasons),
    )


# --------------------------------------------------------------------------- helpers


def _utc(value: datetime, what: str) -> datetime:
    if not isinstance(value, datetime):
        raise ValueError(f"{what} must be a datetime, got {value!r}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _window_spec(window: int | None, days: float | None) -> tuple[int, timedelta | None]:
    if window is not None and days is not None:
        raise ValueError("give window (labels per window) or days (window length), not both")
    if days is not None:
        if isinstance(days, bool) or not isinstance(days, int | float) or not days > 0:
            raise ValueError(f"days must be a positive number, got {days!r}")
        return 0, timedelta(days=days)
    size = 50 if window is None else window
    if isinstance(size, bool) or not isinstance(size, int) or size < 2:
        raise ValueError(f"window must be an integer >= 2 (labels per window), got {size!r}")
    return size, None


def _day_windows(
    recs: Sequence[LabelledRecord], span: timedelta, until: datetime | None
) -> list[Window]:
    end = _utc(until, "until") if until is not None else recs[-1].at
    labelled = [r for r in recs if r.human is not None and r.at <= end]
    if not labelled:
        return []
    first = labelled[0].at
    count = max(1, math.ceil((end - first) / span))
    if end - count * span >= first:  # first record exactly on a boundary
        count += 1
    out: list[Window] = []
    for k in range(count):
        hi = end - (count - 1 - k) * span
        lo = hi - span
        period = [r for r in recs if lo < r.at <= hi]
        out.append(_make_window(k, lo, hi, [r for r in period if r.is_pair], period))
    return out


def _make_window(
    index: int,
    start: datetime,
    end: datetime,
    pairs: Sequence[LabelledRecord],
    period: Sequence[LabelledRecord],
) -> Window:
    agree = sum(1 for r in pairs if r.agrees)
    n = len(pairs)
    return Window(
        index=index,
        start=start,
        end=end,
        n=n,
        agree=agree,
        accuracy=agree / n if n else None,
        kappa=_kappa([r.judge for r in pairs], [r.human for r in pairs]) if n >= 2 else None,
        n_abstain=sum(1 for r in period if r.human is not None and r.judge == "abstain"),
        verdicts={d: c for d in DECISIONS if (c := sum(1 for r in period if r.judge == d))},
    )


def _kappa(judge: list[str], human: list[Any]) -> float | None:
    # Same definition as calibration.agreement.cohen_kappa (scikit-learn's), via the 2x2 table:
    # about 50 times faster, which matters when many windows are evaluated.
    from calibration.bootstrap import contingency_table, kappa_from_tables

    table, _ = contingency_table(judge, human)
    value = float(kappa_from_tables(table))
    return None if math.isnan(value) else value


def _mix_change(ref: Mapping[str, int], cur: Mapping[str, int]) -> str:
    n_ref, n_cur = sum(ref.values()), sum(cur.values())
    parts = []
    for d in DECISIONS:
        a, b = ref.get(d, 0) / n_ref, cur.get(d, 0) / n_cur
        if a or b:
            parts.append(f"{d} {a:.0%} -> {b:.0%}")
    return ", ".join(parts)


def _with(report: DriftReport, **changes: Any) -> DriftReport:
    from dataclasses import replace

    return replace(report, **changes)
