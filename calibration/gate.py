"""The calibration gate: whether a panel's verdicts count as final or stay provisional.

Verdicts are **final** when, over the human labels given in the last ``spec.window_days`` days
up to ``now`` (by label time, else verdict time; labels dated after ``now`` are ignored):

* there are at least ``spec.min_labels`` labelled outcomes on which the panel decided
  (abstentions go to human review and are counted separately, not as agreement);
* the lower bound of the 95 % bootstrap interval of Cohen's kappa (judge vs human) is at least
  ``spec.min_kappa_lower``;
* there is no open drift alert, when ``spec.require_no_drift_alert``.

Otherwise they are **provisional**, and every failing condition is stated in ``reasons``.
The interval is seeded (``seed=0`` by default) so the same data always gives the same answer.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from calibration.drift import LabelledRecord
from judge.panel import GateSpec


@dataclass(frozen=True)
class GateState:
    """Whether verdicts count as final, and why not.

    ``kappa`` and ``kappa_ci`` are ``None`` when undefined (fewer than two labels, or every
    label and decision in one category). ``reasons`` is empty exactly when ``final``.
    """

    final: bool
    reasons: list[str]
    n_labels: int
    kappa: float | None
    kappa_ci: tuple[float, float] | None
    n_abstain: int = 0
    window_start: datetime | None = None
    window_end: datetime | None = None
    level: float = 0.95
    spec: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        """``"final"`` or ``"provisional"``."""
        return "final" if self.final else "provisional"

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "final": self.final,
            "reasons": list(self.reasons),
            "n_labels": self.n_labels,
            "n_abstain": self.n_abstain,
            "kappa": self.kappa,
            "kappa_ci": list(self.kappa_ci) if self.kappa_ci is not None else None,
            "level": self.level,
            "window_start": self.window_start.isoformat() if self.window_start else None,
            "window_end": self.window_end.isoformat() if self.window_end else None,
            "spec": dict(self.spec),
        }


def evaluate_gate(
    records: Iterable[LabelledRecord],
    *,
    spec: GateSpec,
    now: datetime,
    drift_alert: bool,
    level: float = 0.95,
    n: int = 1000,
    seed: int = 0,
) -> GateState:
    """Decide whether a panel's verdicts are final or provisional.

    Parameters
    ----------
    records : iterable of LabelledRecord
        Verdicts with human labels (unlabelled records are ignored).
    spec : GateSpec
        The panel's gate thresholds.
    now : datetime
        The evaluation time (naive datetimes are taken as UTC).
    drift_alert : bool
        Whether a drift alert is open (see :func:`calibration.drift.drift_report`).
    level : float
        Level of the kappa interval (the gate is defined on the 95 % interval).
    n : int
        Bootstrap draws for the kappa interval.
    seed : int
        Bootstrap seed (fixed so the decision is reproducible).

    Returns
    -------
    GateState

    Examples
    --------
    >>> t = datetime(2026, 3, 31, tzinfo=UTC)
    >>> recs = [LabelledRecord(f"T{i}", t - timedelta(days=1), "verified", human=True)
    ...         for i in range(57)]
    >>> state = evaluate_gate(recs, spec=GateSpec(), now=t, drift_alert=False)
    >>> state.final, state.reasons[0]
    (False, 'only 57 labels in the last 30 days; need 200')
    """
    from calibration.bootstrap import DegenerateBootstrapError, kappa_ci

    if not isinstance(spec, GateSpec):
        raise ValueError(f"spec must be a judge.panel.GateSpec, got {type(spec).__name__}")
    if not isinstance(now, datetime):
        raise ValueError(f"now must be a datetime, got {now!r}")
    if not isinstance(drift_alert, bool):
        raise ValueError(f"drift_alert must be True or False, got {drift_alert!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    now = now.replace(tzinfo=UTC) if now.tzinfo is None else now
    start = now - timedelta(days=spec.window_days)

    in_window: list[LabelledRecord] = []
    for r in records:
        if not isinstance(r, LabelledRecord):
            raise ValueError(f"records must be LabelledRecord values, got {type(r).__name__}")
        when = r.labelled_at or r.at
        if r.human is not None and start < when <= now:
            in_window.append(r)
    pairs = [r for r in in_window if r.judge != "abstain"]
    n_abstain = len(in_window) - len(pairs)
    days = f"{spec.window_days} day" + ("s" if spec.window_days != 1 else "")
    reasons: list[str] = []
    if len(pairs) < spec.min_labels:
        extra = f" (plus {n_abstain} abstentions, which do not count)" if n_abstain else ""
        reasons.append(
            f"only {len(pairs)} labels in the last {days}; need {spec.min_labels}{extra}"
        )

    kappa: float | None = None
    ci: tuple[float, float] | None = None
    if len(pairs) >= 2:
        judge = [r.judge for r in pairs]
        human = [str(r.human) for r in pairs]
        try:
            k, (lo, hi) = kappa_ci(judge, human, n=n, level=level, seed=seed)
        except DegenerateBootstrapError:
            from calibration.agreement import cohen_kappa

            k, lo, hi = float(cohen_kappa(judge, human)), math.nan, math.nan
            reasons.append(
                f"kappa interval undefined: too many resamples of the {len(pairs)} labels have "
                "only one category; label more outcomes of both kinds"
            )
        if not math.isnan(k):
            kappa = float(k)
        if not (math.isnan(lo) or math.isnan(hi)):
            ci = (float(lo), float(hi))
        if kappa is None:
            only = sorted(set(human))[0]
            reasons.append(
                f"kappa is undefined: every label and decision in the window is {only!r}; "
                "label outcomes of both kinds"
            )
        elif ci is not None and ci[0] < spec.min_kappa_lower:
            reasons.append(
                f"kappa lower {level:.0%} bound {ci[0]:.3f} < {spec.min_kappa_lower} "
                f"(kappa {kappa:.3f} on {len(pairs)} labels)"
            )
    elif pairs or not reasons:
        reasons.append("kappa cannot be computed from fewer than 2 labels")
    if spec.require_no_drift_alert and drift_alert:
        reasons.append("a drift alert is open; resolve it (see `judge drift`) before finalising")
    return GateState(
        final=not reasons,
        reasons=reasons,
        n_labels=len(pairs),
        kappa=kappa,
        kappa_ci=ci,
        n_abstain=n_abstain,
        window_start=start,
        window_end=now,
        level=level,
        spec=spec.model_dump(),
    )
