"""TCO and break-even between two model paths: pure arithmetic, no database (the rows come from
:func:`ledger.counted.judged_rows`).

The cost model (DESIGN.md, "Ledger and economics"): a task the AI fails is finished by a person,
so the expected cost of one *finished* task on a model path is

    TCO = C_token + P(fail) x L

with ``C_token`` the mean agent inference cost per attempt (USD), ``P(fail)`` the share of
attempts that are not verified and ``L`` the labour cost of finishing a failed task by hand (USD
per task). Between a path A and a path B whose token cost is higher by ``dC = C_b - C_a``, B pays
off exactly when it fails less often than A by more than

    dp* = dC / L

(absolute failure-rate points). With both failure rates known, the decision flips at the labour
cost ``L* = dC / dp`` with ``dp = P_a(fail) - P_b(fail)``; see :func:`breakeven` for the rules
when ``dp`` is zero or ``L*`` is not positive.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    pass

Cheaper = Literal["a", "b", "tie"]
FlipRule = Literal["flips", "dominates", "same_failure_rate", "identical"]

#: Relative tolerance under which two TCOs count as equal (float noise, not a real difference).
TIE_RTOL = 1e-9


def _check_amount(name: str, value: object, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number of USD, got {type(value).__name__}: {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite amount of USD, got {value!r}")
    if number < 0 or (positive and number == 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be {bound} (USD), got {value!r}")
    return number


def _check_probability(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    number = float(value)
    if not (0.0 <= number <= 1.0):  # also rejects nan
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    return number


def _tco(token_cost: float, p_fail: float, labor: float) -> float:
    return token_cost + p_fail * labor


def tco(*, token_cost: float, p_fail: float, labor: float) -> float:
    """Total cost of ownership of one finished task: ``C_token + P(fail) x L``.

    Parameters
    ----------
    token_cost
        Mean agent inference cost per attempt, USD (``>= 0``).
    p_fail
        Probability that an attempt is not verified and a person must finish the task, in
        ``[0, 1]``.
    labor
        Labour cost of finishing one failed task by hand, USD (``>= 0``).

    Returns
    -------
    float
        Expected USD per finished task.

    Raises
    ------
    ValueError
        An argument is not a number, not finite, negative, or ``p_fail`` is outside ``[0, 1]``;
        the message names the argument.

    Examples
    --------
    >>> tco(token_cost=0.01, p_fail=0.25, labor=4.0)
    1.01
    >>> tco(token_cost=0.01, p_fail=1.5, labor=4.0)
    Traceback (most recent call last):
    ...
    ValueError: p_fail must be a probability in [0, 1], got 1.5
    """
    return _tco(
        _check_amount("token_cost", token_cost),
        _check_probability("p_fail", p_fail),
        _check_amount("labor", labor),
    )


@dataclass(frozen=True)
class Breakeven:
    """The comparison of model path A with model path B (see :func:`breakeven`).

    Attributes
    ----------
    cost_a, cost_b, labor
        The inputs: token cost per attempt of each path and the labour cost per failed task (USD).
    delta_cost
        ``cost_b - cost_a``: what B costs more in tokens per attempt (negative: B costs less).
    dp_star
        ``delta_cost / labor``: how many failure-rate points (absolute, as a fraction) B must fail
        *less* often than A to break even; negative means B may fail up to ``-dp_star`` more
        often and still be as cheap.
    p_fail_a, p_fail_b
        Failure rates when given, else None (and so are all the fields below).
    tco_a, tco_b
        ``C + P(fail) x L`` of each path at ``labor``.
    cheaper
        ``"a"``, ``"b"`` or ``"tie"`` (TCOs equal within :data:`TIE_RTOL`).
    saving_per_task
        ``|tco_a - tco_b|``: USD saved per finished task by taking the cheaper path (0 on a tie).
    delta_p
        ``p_fail_a - p_fail_b``: how much less often B fails.
    flip_labor
        The labour cost per task at which the two TCOs are equal (``delta_cost / delta_p``), or
        None when no positive labour cost makes them equal (see ``flip_rule``).
    flip_rule
        ``"flips"``: below ``flip_labor`` the path with the lower token cost is cheaper, above it
        the path that fails less. ``"dominates"``: one path is no dearer in tokens and fails less
        (``delta_cost / delta_p <= 0``), so it is cheaper at every positive labour cost.
        ``"same_failure_rate"``: labour cost does not matter; the lower token cost wins at every
        labour cost (the failure rates are equal, or differ so little that ``delta_cost /
        delta_p`` is beyond any finite amount). ``"identical"``: same token cost and failure
        rate, a tie at every labour cost.
    """

    cost_a: float
    cost_b: float
    labor: float
    delta_cost: float
    dp_star: float
    p_fail_a: float | None = None
    p_fail_b: float | None = None
    tco_a: float | None = None
    tco_b: float | None = None
    cheaper: Cheaper | None = None
    saving_per_task: float | None = None
    delta_p: float | None = None
    flip_labor: float | None = None
    flip_rule: FlipRule | None = None

    def to_dict(self) -> dict[str, Any]:
        """All fields as a JSON-ready dict (None stays None)."""
        return asdict(self)


def breakeven(
    *,
    cost_a: float,
    cost_b: float,
    labor: float,
    p_fail_a: float | None = None,
    p_fail_b: float | None = None,
) -> Breakeven:
    """Break-even between two model paths A and B.

    Always computes ``dp* = (cost_b - cost_a) / labor``. With both failure rates it also computes
    each path's TCO, which path is cheaper per finished task and by how much, and the labour cost
    at which the decision flips.

    Rules for the flip labour cost ``L* = dC / dp`` (``dC = cost_b - cost_a``,
    ``dp = p_fail_a - p_fail_b``):

    - ``dp != 0`` and ``L* > 0`` finite: ``flip_rule="flips"``, ``flip_labor=L*``; below it
      the path with the lower token cost is cheaper, above it the path that fails less.
    - ``dp != 0`` and ``L*`` positive but not finite (``dp`` so small next to ``dC`` that the
      division overflows, e.g. ``dC = 1``, ``dp = 5e-324``): no finite labour cost flips the
      decision, the lower token cost wins at every labour cost, as when both fail equally
      often: ``flip_rule="same_failure_rate"``, ``flip_labor=None``. (``flip_labor`` is always
      None or a finite amount :func:`tco` accepts.)
    - ``dp != 0`` and ``L* <= 0`` (the "wrong" sign): the path that fails less is also no dearer
      in tokens; it is cheaper at every positive labour cost: ``flip_rule="dominates"``,
      ``flip_labor=None``.
    - ``dp == 0`` and ``dC != 0``: the TCO gap is ``dC`` whatever the labour cost:
      ``flip_rule="same_failure_rate"``, ``flip_labor=None``.
    - ``dp == 0`` and ``dC == 0``: ``flip_rule="identical"``, a tie at every labour cost.

    Parameters
    ----------
    cost_a, cost_b
        Token cost per attempt of path A and path B, USD (``>= 0``).
    labor
        Labour cost of finishing one failed task by hand, USD (``> 0``: ``dp*`` divides by it).
    p_fail_a, p_fail_b
        Failure rates in ``[0, 1]``; give both or neither.

    Returns
    -------
    Breakeven

    Raises
    ------
    ValueError
        A cost is negative or not finite, ``labor`` is not ``> 0``, a failure rate is outside
        ``[0, 1]``, or only one failure rate is given; the message names the argument.

    Examples
    --------
    B costs 2 cents more per attempt; at $5 of labour per failed task it must fail 0.4 points
    less often:

    >>> b = breakeven(cost_a=0.01, cost_b=0.03, labor=5.0)
    >>> round(b.dp_star, 6)
    0.004
    >>> b = breakeven(cost_a=0.01, cost_b=0.03, labor=5.0, p_fail_a=0.20, p_fail_b=0.15)
    >>> b.cheaper, round(b.saving_per_task, 6), round(b.flip_labor, 6), b.flip_rule
    ('b', 0.23, 0.4, 'flips')

    B fails less by the smallest float there is: no finite labour cost makes up its dearer tokens.

    >>> b = breakeven(cost_a=0, cost_b=1, labor=1, p_fail_a=5e-324, p_fail_b=0)
    >>> b.cheaper, b.flip_labor, b.flip_rule
    ('a', None, 'same_failure_rate')
    """
    a = _check_amount("cost_a", cost_a)
    b = _check_amount("cost_b", cost_b)
    lab = _check_amount("labor", labor, positive=True)
    if (p_fail_a is None) != (p_fail_b is None):
        missing = "p_fail_b" if p_fail_b is None else "p_fail_a"
        raise ValueError(
            f"{missing} is missing: give both p_fail_a and p_fail_b (to compare TCOs) or neither "
            "(for dp* only)"
        )
    delta_cost = b - a
    result = Breakeven(
        cost_a=a, cost_b=b, labor=lab, delta_cost=delta_cost, dp_star=delta_cost / lab
    )
    if p_fail_a is None or p_fail_b is None:
        return result
    pa = _check_probability("p_fail_a", p_fail_a)
    pb = _check_probability("p_fail_b", p_fail_b)
    tco_a, tco_b = _tco(a, pa, lab), _tco(b, pb, lab)
    gap = tco_a - tco_b
    cheaper: Cheaper
    if abs(gap) <= TIE_RTOL * max(abs(tco_a), abs(tco_b), 1e-300):
        cheaper, saving = "tie", 0.0
    else:
        cheaper, saving = ("b" if gap > 0 else "a"), abs(gap)
    delta_p = pa - pb
    flip: float | None = None
    rule: FlipRule
    if delta_p == 0:
        rule = "identical" if delta_cost == 0 else "same_failure_rate"
    else:
        candidate = delta_cost / delta_p
        if candidate <= 0:
            rule = "dominates"
        elif math.isfinite(candidate):
            rule, flip = "flips", candidate
        else:
            rule = "same_failure_rate"  # the flip lies beyond every finite labour cost
    return Breakeven(
        cost_a=a,
        cost_b=b,
        labor=lab,
        delta_cost=delta_cost,
        dp_star=delta_cost / lab,
        p_fail_a=pa,
        p_fail_b=pb,
        tco_a=tco_a,
        tco_b=tco_b,
        cheaper=cheaper,
        saving_per_task=saving,
        delta_p=delta_p,
        flip_labor=flip,
        flip_rule=rule,
    )


#: Confidence level and method of the failure-rate interval :func:`path_stats` reports.
CI_LEVEL = 0.95
CI_METHOD = "wilson"


@dataclass(frozen=True)
class PathStats:
    """What was measured for one model path: each outcome once, by its latest verdict.

    ``p_fail = 1 - verified / attempts`` (``not_verified`` and ``abstain`` both fail: nobody can
    bill them), with its 95 % Wilson score interval ``[p_fail_low, p_fail_high]``;
    ``token_cost`` is the mean agent cost of the ``costed`` attempts that record one (None when
    none does).
    """

    model_path: str
    attempts: int
    verified: int
    p_fail: float
    p_fail_low: float
    p_fail_high: float
    costed: int
    token_cost: float | None


def path_stats(rows: Sequence[tuple[str, float | None]], *, model_path: str) -> PathStats:
    """Measure one model path from ``(decision, agent_cost_usd)`` of each judged outcome.

    The interval is Wilson's score interval (:func:`scipy.stats.binomtest`), not a bootstrap:
    with 0 or all attempts verified a bootstrap interval collapses to a point, Wilson's does not.

    Raises
    ------
    ValueError
        ``rows`` is empty, or a cost is negative or not finite.

    Examples
    --------
    >>> s = path_stats([("verified", 0.01), ("abstain", 0.03), ("verified", None)], model_path="m")
    >>> s.attempts, s.verified, round(s.p_fail, 4), s.costed, s.token_cost
    (3, 2, 0.3333, 2, 0.02)
    >>> 0.0 <= s.p_fail_low < s.p_fail < s.p_fail_high <= 1.0
    True
    """
    from scipy.stats import binomtest

    if not rows:
        raise ValueError(f"model path {model_path!r} has no judged outcomes to measure")
    costs = [_check_amount("agent_cost_usd", c) for _, c in rows if c is not None]
    attempts = len(rows)
    verified = sum(1 for decision, _ in rows if decision == "verified")
    ci = binomtest(verified, attempts).proportion_ci(confidence_level=CI_LEVEL, method=CI_METHOD)
    return PathStats(
        model_path=model_path,
        attempts=attempts,
        verified=verified,
        p_fail=1.0 - verified / attempts,
        p_fail_low=max(0.0, 1.0 - float(ci.high)),
        p_fail_high=min(1.0, 1.0 - float(ci.low)),
        costed=len(costs),
        token_cost=sum(costs) / len(costs) if costs else None,
    )


__all__ = [
    "CI_LEVEL",
    "CI_METHOD",
    "TIE_RTOL",
    "Breakeven",
    "Cheaper",
    "FlipRule",
    "PathStats",
    "breakeven",
    "explain",
    "path_stats",
    "tco",
]


def _usd(value: float) -> str:
    return f"${value:,.6g}"


def explain(result: Breakeven, *, name_a: str = "A", name_b: str = "B") -> list[str]:
    """The comparison as sentences: dp*, the cheaper path per finished task, the flip point."""
    lines = []
    dp = result.dp_star
    head = f"dp* = dC / L = {result.delta_cost:+.6g} / {result.labor:g} = {dp:+.4%}"
    if dp > 0:
        lines.append(
            f"{head}: {name_b} costs {_usd(result.delta_cost)} more per attempt and must fail "
            f"{dp:.4%} (absolute) less often than {name_a} to pay for it."
        )
    elif dp < 0:
        lines.append(
            f"{head}: {name_b} costs {_usd(-result.delta_cost)} less per attempt and may fail up "
            f"to {-dp:.4%} (absolute) more often than {name_a} and still be as cheap."
        )
    else:
        lines.append(f"{head}: same token cost; the path that fails less is cheaper.")
    if result.tco_a is None or result.tco_b is None or result.p_fail_a is None:
        return lines
    lines.append(
        f"TCO per finished task at labour {_usd(result.labor)}: {name_a} {_usd(result.tco_a)} "
        f"(P(fail) {result.p_fail_a:.4f}), {name_b} {_usd(result.tco_b)} "
        f"(P(fail) {result.p_fail_b:.4f})."
    )
    if result.cheaper == "tie":
        lines.append("Neither is cheaper per finished task: the TCOs are equal.")
    else:
        winner = name_a if result.cheaper == "a" else name_b
        saving = result.saving_per_task or 0.0
        lines.append(
            f"Cheaper per finished task: {winner}, by {_usd(saving)} "
            f"({_usd(saving * 1000)} per 1,000 tasks)."
        )
    if result.flip_rule == "flips" and result.flip_labor is not None:
        cheap_tokens = name_a if result.delta_cost > 0 else name_b
        fails_less = name_b if cheap_tokens == name_a else name_a
        lines.append(
            f"The decision flips at a labour cost of {_usd(result.flip_labor)} per failed task: "
            f"below it {cheap_tokens} (lower token cost) is cheaper, above it {fails_less} "
            "(fails less)."
        )
    elif result.flip_rule == "dominates":
        lead = name_b if (result.delta_p or 0.0) > 0 else name_a
        lines.append(
            f"No labour cost flips the decision: {lead} is no dearer in tokens and fails less."
        )
    elif result.flip_rule == "same_failure_rate":
        how = (
            "both fail equally often"
            if not result.delta_p
            else "the failure rates differ too little to make up the token gap at any labour cost"
        )
        lines.append(
            f"No labour cost flips the decision: {how}, so the lower token cost wins whatever "
            "labour costs."
        )
    else:
        lines.append("Identical token cost and failure rate: a tie at every labour cost.")
    return lines
