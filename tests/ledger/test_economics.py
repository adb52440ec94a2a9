"""TCO and break-even arithmetic (ledger.economics): worked examples, validation, properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ledger.economics import TIE_RTOL, breakeven, path_stats, tco

costs = st.floats(min_value=0.0, max_value=10.0, allow_nan=False, allow_infinity=False)
labors = st.floats(min_value=0.01, max_value=1000.0, allow_nan=False, allow_infinity=False)
probs = st.floats(min_value=0.0, max_value=1.0, allow_nan=False, allow_infinity=False)


def test_tco_is_token_cost_plus_expected_labour() -> None:
    # 1,000 tickets at 2 cents, 150 of them failed and finished by a $6 agent: $9.02 per ticket
    total = 1000 * 0.02 + 150 * 6.0
    assert tco(token_cost=0.02, p_fail=0.15, labor=6.0) == pytest.approx(total / 1000)
    assert tco(token_cost=0.5, p_fail=0.0, labor=100.0) == 0.5
    assert tco(token_cost=0.0, p_fail=1.0, labor=3.0) == 3.0


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"token_cost": -0.01, "p_fail": 0.1, "labor": 1.0}, "token_cost"),
        ({"token_cost": math.inf, "p_fail": 0.1, "labor": 1.0}, "token_cost"),
        ({"token_cost": math.nan, "p_fail": 0.1, "labor": 1.0}, "token_cost"),
        ({"token_cost": 0.01, "p_fail": -0.1, "labor": 1.0}, "p_fail"),
        ({"token_cost": 0.01, "p_fail": 1.01, "labor": 1.0}, "p_fail"),
        ({"token_cost": 0.01, "p_fail": math.nan, "labor": 1.0}, "p_fail"),
        ({"token_cost": 0.01, "p_fail": 0.1, "labor": -5.0}, "labor"),
        ({"token_cost": "0.01", "p_fail": 0.1, "labor": 1.0}, "token_cost"),
        ({"token_cost": 0.01, "p_fail": True, "labor": 1.0}, "p_fail"),
    ],
)
def test_tco_rejects_bad_input_naming_the_argument(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name} must"):
        tco(**kwargs)  # type: ignore[arg-type]


def test_tco_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        tco(0.01, 0.1, 1.0)  # type: ignore[call-arg]


def test_breakeven_dp_star_without_failure_rates() -> None:
    result = breakeven(cost_a=0.004, cost_b=0.024, labor=8.0)
    assert result.delta_cost == pytest.approx(0.02)
    assert result.dp_star == pytest.approx(0.0025)  # B must fail 0.25 points less often
    assert result.tco_a is None and result.cheaper is None and result.flip_labor is None
    # B cheaper in tokens: dp* negative (B may fail that much more often)
    assert breakeven(cost_a=0.03, cost_b=0.01, labor=4.0).dp_star == pytest.approx(-0.005)


def test_breakeven_worked_example_flips() -> None:
    # A: cheap model, fails 30 %; B: 5 cents more, fails 20 %.  L* = 0.05 / 0.10 = $0.50.
    low = breakeven(cost_a=0.01, cost_b=0.06, labor=0.2, p_fail_a=0.3, p_fail_b=0.2)
    high = breakeven(cost_a=0.01, cost_b=0.06, labor=5.0, p_fail_a=0.3, p_fail_b=0.2)
    for r in (low, high):
        assert r.flip_rule == "flips"
        assert r.flip_labor == pytest.approx(0.5)
        assert r.delta_p == pytest.approx(0.1)
    assert low.cheaper == "a"  # labour cheap: token cost decides
    assert low.saving_per_task == pytest.approx((0.06 + 0.2 * 0.2) - (0.01 + 0.3 * 0.2))
    assert high.cheaper == "b"  # labour dear: failure rate decides
    assert high.tco_a == pytest.approx(1.51) and high.tco_b == pytest.approx(1.06)
    assert high.saving_per_task == pytest.approx(0.45)
    at_flip = breakeven(cost_a=0.01, cost_b=0.06, labor=0.5, p_fail_a=0.3, p_fail_b=0.2)
    assert at_flip.cheaper == "tie" and at_flip.saving_per_task == 0.0


def test_breakeven_dominating_path_never_flips() -> None:
    # B is cheaper in tokens AND fails less: dC/dp < 0, no positive labour rate flips it
    r = breakeven(cost_a=0.05, cost_b=0.01, labor=3.0, p_fail_a=0.4, p_fail_b=0.1)
    assert (r.cheaper, r.flip_rule, r.flip_labor) == ("b", "dominates", None)
    # same token cost, A fails less: A wins at every positive labour cost (dC/dp == 0)
    r = breakeven(cost_a=0.02, cost_b=0.02, labor=3.0, p_fail_a=0.1, p_fail_b=0.2)
    assert (r.cheaper, r.flip_rule, r.flip_labor) == ("a", "dominates", None)


def test_breakeven_same_failure_rate_and_identical() -> None:
    r = breakeven(cost_a=0.02, cost_b=0.03, labor=50.0, p_fail_a=0.2, p_fail_b=0.2)
    assert (r.cheaper, r.flip_rule, r.flip_labor) == ("a", "same_failure_rate", None)
    assert r.saving_per_task == pytest.approx(0.01)  # the token gap, whatever the labour cost
    r = breakeven(cost_a=0.02, cost_b=0.02, labor=50.0, p_fail_a=0.2, p_fail_b=0.2)
    assert (r.cheaper, r.flip_rule, r.flip_labor, r.saving_per_task) == (
        "tie",
        "identical",
        None,
        0.0,
    )


def test_a_flip_beyond_every_finite_labour_cost_is_no_flip() -> None:
    # B costs $1 more and fails less by 5e-324: L* = 1 / 5e-324 overflows to inf.
    r = breakeven(cost_a=0, cost_b=1, labor=1, p_fail_a=5e-324, p_fail_b=0)
    assert (r.cheaper, r.flip_rule, r.flip_labor) == ("a", "same_failure_rate", None)
    assert r.delta_p == 5e-324  # the rates do differ; no finite labour cost makes it matter
    for labor in (1.0, 1e6, 1e300, 1.7e308):
        again = breakeven(cost_a=0, cost_b=1, labor=labor, p_fail_a=5e-324, p_fail_b=0)
        assert again.cheaper == "a" and again.flip_labor is None
    # The mirror image, and B cheaper in tokens as well as failing less (still dominates).
    mirror = breakeven(cost_a=1, cost_b=0, labor=1, p_fail_a=0, p_fail_b=5e-324)
    assert (mirror.cheaper, mirror.flip_rule, mirror.flip_labor) == ("b", "same_failure_rate", None)
    both = breakeven(cost_a=1, cost_b=0, labor=1, p_fail_a=5e-324, p_fail_b=0)
    assert (both.cheaper, both.flip_rule, both.flip_labor) == ("b", "dominates", None)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"cost_a": -1.0, "cost_b": 0.0, "labor": 1.0}, "cost_a"),
        ({"cost_a": 0.0, "cost_b": math.inf, "labor": 1.0}, "cost_b"),
        ({"cost_a": 0.0, "cost_b": 0.1, "labor": 0.0}, "labor"),
        ({"cost_a": 0.0, "cost_b": 0.1, "labor": math.nan}, "labor"),
        ({"cost_a": 0.0, "cost_b": 0.1, "labor": 1.0, "p_fail_a": 0.1}, "p_fail_b"),
        ({"cost_a": 0.0, "cost_b": 0.1, "labor": 1.0, "p_fail_b": 0.1}, "p_fail_a"),
        ({"cost_a": 0.0, "cost_b": 0.1, "labor": 1.0, "p_fail_a": 2, "p_fail_b": 0.1}, "p_fail_a"),
        ({"cost_a": 0.0, "cost_b": 0.1, "labor": 1.0, "p_fail_a": 0, "p_fail_b": -1}, "p_fail_b"),
    ],
)
def test_breakeven_rejects_bad_input_naming_the_argument(
    kwargs: dict[str, object], name: str
) -> None:
    with pytest.raises(ValueError, match=rf"^{name} "):
        breakeven(**kwargs)  # type: ignore[arg-type]


@given(a=costs, b=costs, labor=labors)
def test_dp_star_is_the_failure_gap_that_equalises_tco(a: float, b: float, labor: float) -> None:
    r = breakeven(cost_a=a, cost_b=b, labor=labor)
    # with p_fail_b = p_fail_a - dp*, the two TCOs are equal (for any p_fail_a)
    p_a = 0.7
    assert tco(token_cost=a, p_fail=p_a, labor=labor) == pytest.approx(
        b + (p_a - r.dp_star) * labor, abs=1e-9
    )


# A failure-rate gap of the smallest float: dC / dp overflows to inf, which is no labour cost.
@example(a=0.0, b=1.0, labor=1.0, pa=5e-324, pb=0.0)
@given(a=costs, b=costs, labor=labors, pa=probs, pb=probs)
def test_flip_labor_equalises_the_two_tcos(
    a: float, b: float, labor: float, pa: float, pb: float
) -> None:
    r = breakeven(cost_a=a, cost_b=b, labor=labor, p_fail_a=pa, p_fail_b=pb)
    if r.flip_labor is not None:
        assert r.flip_rule == "flips" and r.flip_labor > 0
        t_a = tco(token_cost=a, p_fail=pa, labor=r.flip_labor)
        t_b = tco(token_cost=b, p_fail=pb, labor=r.flip_labor)
        assert t_a == pytest.approx(t_b, rel=1e-9, abs=1e-12)
    else:
        # no positive labour cost makes them equal unless they are equal everywhere
        assert r.flip_rule in ("dominates", "same_failure_rate", "identical")
        for other in (0.5 * labor, labor, 2.0 * labor):
            again = breakeven(cost_a=a, cost_b=b, labor=other, p_fail_a=pa, p_fail_b=pb)
            if r.flip_rule != "identical" and again.cheaper != "tie":
                assert again.cheaper == r.cheaper or r.cheaper == "tie"


@given(a=costs, b=costs, labor=labors, pa=probs, pb=probs)
def test_cheaper_path_has_the_lower_tco_and_saving_is_the_gap(
    a: float, b: float, labor: float, pa: float, pb: float
) -> None:
    r = breakeven(cost_a=a, cost_b=b, labor=labor, p_fail_a=pa, p_fail_b=pb)
    assert r.tco_a == tco(token_cost=a, p_fail=pa, labor=labor)
    assert r.tco_b == tco(token_cost=b, p_fail=pb, labor=labor)
    assert r.tco_a is not None and r.tco_b is not None and r.saving_per_task is not None
    if r.cheaper == "a":
        assert r.tco_a < r.tco_b
        assert r.saving_per_task == pytest.approx(r.tco_b - r.tco_a)
    elif r.cheaper == "b":
        assert r.tco_b < r.tco_a
        assert r.saving_per_task == pytest.approx(r.tco_a - r.tco_b)
    else:
        assert abs(r.tco_a - r.tco_b) <= TIE_RTOL * max(r.tco_a, r.tco_b, 1e-300)
        assert r.saving_per_task == 0.0


@given(a=costs, b=costs, labor=labors, pa=probs, pb=probs)
def test_swapping_paths_mirrors_the_result(
    a: float, b: float, labor: float, pa: float, pb: float
) -> None:
    ab = breakeven(cost_a=a, cost_b=b, labor=labor, p_fail_a=pa, p_fail_b=pb)
    ba = breakeven(cost_a=b, cost_b=a, labor=labor, p_fail_a=pb, p_fail_b=pa)
    mirror = {"a": "b", "b": "a", "tie": "tie"}
    assert ba.cheaper == mirror[ab.cheaper or "tie"]
    assert ba.flip_rule == ab.flip_rule
    assert ba.flip_labor == ab.flip_labor or (
        ab.flip_labor is not None and ba.flip_labor == pytest.approx(ab.flip_labor)
    )


def _wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@pytest.mark.parametrize(("k", "n"), [(0, 7), (7, 7), (12, 28), (1, 1)])
def test_path_stats_wilson_interval_on_the_failure_rate(k: int, n: int) -> None:
    rows = [("verified", 0.01)] * k + [("not_verified", 0.03)] * (n - k)
    s = path_stats(rows, model_path="m")
    lo, hi = _wilson(k, n)
    assert (s.attempts, s.verified, s.costed) == (n, k, n)
    assert s.p_fail == pytest.approx(1 - k / n)
    assert s.p_fail_low == pytest.approx(max(0.0, 1 - hi), abs=1e-12)
    assert s.p_fail_high == pytest.approx(min(1.0, 1 - lo), abs=1e-12)
    assert s.p_fail_high - s.p_fail_low > 0.05  # never a degenerate point, even at 0 or n
    assert s.token_cost == pytest.approx((0.01 * k + 0.03 * (n - k)) / n)


def test_path_stats_abstain_fails_and_missing_costs_are_left_out_of_the_mean() -> None:
    s = path_stats([("verified", None), ("abstain", 0.02), ("abstain", None)], model_path="m")
    assert s.verified == 1 and s.p_fail == pytest.approx(2 / 3)
    assert (s.costed, s.token_cost) == (1, 0.02)
    assert path_stats([("verified", None)], model_path="m").token_cost is None


def test_path_stats_rejects_no_rows_and_bad_costs() -> None:
    with pytest.raises(ValueError, match="'m' has no judged outcomes"):
        path_stats([], model_path="m")
    with pytest.raises(ValueError, match="agent_cost_usd must be >= 0"):
        path_stats([("verified", -0.5)], model_path="m")
