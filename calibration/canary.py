"""Canary re-grades: when a frozen canary set must be re-graded, and what changed on it.

A *canary set* is a small, frozen set of outcomes whose verdicts under the current panel and
rubric are kept as a baseline. When the configuration changes (the rubric version, the panel, or
any judge's model string), :func:`needs_canary_regrade` says so and why; the canary outcomes are
then re-graded with the new configuration and :func:`canary_check` compares the old and new
decisions: the flips, the flip rate with an exact (Clopper-Pearson) interval, and an alert when
the flip rate exceeds a threshold or the re-grade is incomplete.

Split out of :mod:`calibration.drift` (which re-exports both functions for compatibility).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

DECISIONS = ("verified", "not_verified", "abstain")


@dataclass(frozen=True)
class CanaryResult:
    """Old versus new decisions on the frozen canary set."""

    n: int
    flips: list[tuple[str, str, str]]
    flip_rate: float | None
    ci: tuple[float, float] | None
    missing: list[str]
    extra: list[str]
    max_flip_rate: float
    alert: bool
    reasons: list[str]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["flips"] = [{"id": i, "previous": a, "current": b} for i, a, b in self.flips]
        return out


@dataclass(frozen=True)
class CanaryTrigger:
    """Whether the canary set must be re-graded, and why. Truthy when it must."""

    needed: bool
    reasons: list[str]

    def __bool__(self) -> bool:
        return self.needed


def canary_check(
    previous: Mapping[str, str],
    current: Mapping[str, str],
    *,
    max_flip_rate: float = 0.05,
    level: float = 0.95,
) -> CanaryResult:
    """Compare decisions on the frozen canary set before and after a panel/rubric change.

    Parameters
    ----------
    previous, current : mapping of outcome id -> decision
        Decisions from the old and the new configuration.
    max_flip_rate : float
        Alert when more than this share of canary decisions changed.
    level : float
        Level of the exact (Clopper-Pearson) interval on the flip rate.

    Returns
    -------
    CanaryResult
        ``alert`` when the flip rate exceeds ``max_flip_rate`` or a previous canary id has no
        current decision (an incomplete re-grade cannot clear the change).

    Examples
    --------
    >>> old = {"c1": "verified", "c2": "not_verified", "c3": "verified", "c4": "verified"}
    >>> new = {"c1": "verified", "c2": "verified", "c3": "verified", "c4": "verified"}
    >>> res = canary_check(old, new, max_flip_rate=0.1)
    >>> res.flips, res.flip_rate, res.alert
    ([('c2', 'not_verified', 'verified')], 0.25, True)
    """
    if not 0 <= max_flip_rate < 1:
        raise ValueError(f"max_flip_rate must be in [0, 1), got {max_flip_rate!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    for name, mapping in (("previous", previous), ("current", current)):
        bad = sorted(k for k, v in mapping.items() if v not in DECISIONS)
        if bad:
            raise ValueError(
                f"{name} has decisions outside {', '.join(DECISIONS)} for ids: "
                + ", ".join(bad[:10])
            )
    common = sorted(set(previous) & set(current))
    missing = sorted(set(previous) - set(current))
    extra = sorted(set(current) - set(previous))
    flips = [(i, previous[i], current[i]) for i in common if previous[i] != current[i]]
    reasons: list[str] = []
    rate: float | None = None
    ci: tuple[float, float] | None = None
    if common:
        rate = len(flips) / len(common)
        from scipy import stats

        interval = stats.binomtest(len(flips), len(common)).proportion_ci(
            confidence_level=level, method="exact"
        )
        ci = (float(interval.low), float(interval.high))
        if rate > max_flip_rate:
            reasons.append(
                f"{len(flips)} of {len(common)} canary decisions changed ({rate:.1%} > "
                f"{max_flip_rate:.1%})"
            )
    else:
        reasons.append("no canary outcome has both a previous and a current decision")
    if missing:
        reasons.append(
            f"{len(missing)} canary outcome(s) were not re-graded: {', '.join(missing[:10])}"
        )
    return CanaryResult(
        n=len(common),
        flips=flips,
        flip_rate=rate,
        ci=ci,
        missing=missing,
        extra=extra,
        max_flip_rate=max_flip_rate,
        alert=bool(reasons),
        reasons=reasons,
    )


def needs_canary_regrade(
    old_panel_ref: str,
    new_panel_ref: str,
    old_rubric_ref: str,
    new_rubric_ref: str,
    old_models: Mapping[str, str] | Iterable[str],
    new_models: Mapping[str, str] | Iterable[str],
) -> CanaryTrigger:
    """Whether a configuration change requires re-grading the canary set.

    A re-grade is needed when the rubric reference (``name@version``) changed, when any judge's
    model string changed (a judge added, removed or pointed at another model), or when the
    panel reference changed for any other reason (aggregation, samples, thresholds). A provider
    silently updating the model behind an unchanged string is invisible here: schedule periodic
    canary re-grades for that.

    Parameters
    ----------
    old_panel_ref, new_panel_ref : str
        Panel references (``Panel.ref``).
    old_rubric_ref, new_rubric_ref : str
        Rubric references (``name@version``).
    old_models, new_models : mapping of judge name -> model string, or iterable of model strings

    Returns
    -------
    CanaryTrigger
        Truthy when a re-grade is needed; ``reasons`` lists every change found.

    Examples
    --------
    >>> t = needs_canary_regrade("p@1", "p@2", "r@a", "r@a",
    ...                          {"j": "openai/gpt-4o-mini"}, {"j": "openai/gpt-4.1-mini"})
    >>> bool(t), t.reasons[0]
    (True, "judge 'j' model changed: 'openai/gpt-4o-mini' -> 'openai/gpt-4.1-mini'")
    >>> bool(needs_canary_regrade("p@1", "p@1", "r@a", "r@a", ["m"], ["m"]))
    False
    """
    reasons: list[str] = []
    if old_rubric_ref != new_rubric_ref:
        reasons.append(f"rubric changed: {old_rubric_ref} -> {new_rubric_ref}")
    if isinstance(old_models, Mapping) and isinstance(new_models, Mapping):
        for name in sorted(set(old_models) | set(new_models)):
            a, b = old_models.get(name), new_models.get(name)
            if a == b:
                continue
            if a is None:
                reasons.append(f"judge {name!r} added with model {b!r}")
            elif b is None:
                reasons.append(f"judge {name!r} (model {a!r}) removed")
            else:
                reasons.append(f"judge {name!r} model changed: {a!r} -> {b!r}")
    else:
        old_set = Counter(_model_strings(old_models))
        new_set = Counter(_model_strings(new_models))
        if old_set != new_set:
            gone = sorted((old_set - new_set).elements())
            added = sorted((new_set - old_set).elements())
            reasons.append(
                f"judge models changed: removed {gone or 'none'}, added {added or 'none'}"
            )
    if old_panel_ref != new_panel_ref and not reasons:
        reasons.append(f"panel changed: {old_panel_ref} -> {new_panel_ref}")
    elif old_panel_ref != new_panel_ref:
        reasons.append(f"panel reference {old_panel_ref} -> {new_panel_ref}")
    return CanaryTrigger(needed=bool(reasons), reasons=reasons)


# --------------------------------------------------------------------------- helpers


def _model_strings(models: Mapping[str, str] | Iterable[str]) -> list[str]:
    if isinstance(models, str):
        raise ValueError("models must be a list of model strings or a name -> model mapping")
    if isinstance(models, Mapping):
        return list(models.values())
    return list(models)
