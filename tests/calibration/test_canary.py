"""Canary re-grades: flips, the alert, and when a configuration change requires a re-grade."""

from __future__ import annotations

import pytest

import calibration
import calibration.drift
from calibration.canary import canary_check, needs_canary_regrade


def test_drift_and_package_re_export_the_canary_api() -> None:
    # Moved out of calibration.drift; the old import paths must keep working (same objects).
    assert calibration.drift.canary_check is canary_check
    assert calibration.drift.needs_canary_regrade is needs_canary_regrade
    assert calibration.canary_check is canary_check
    assert calibration.needs_canary_regrade is needs_canary_regrade


def test_canary_check_reports_flips_and_alerts_above_the_threshold() -> None:
    old = {f"c{i}": "verified" for i in range(40)}
    new = dict(old)
    new["c3"] = "not_verified"
    new["c7"] = "abstain"
    res = canary_check(old, new, max_flip_rate=0.05)
    assert res.flips == [("c3", "verified", "not_verified"), ("c7", "verified", "abstain")]
    assert res.flip_rate == 0.05 and not res.alert  # exactly at the threshold: no alert
    assert res.ci is not None and res.ci[0] < 0.05 < res.ci[1]
    new["c9"] = "not_verified"
    res = canary_check(old, new, max_flip_rate=0.05)
    assert res.alert and "3 of 40" in res.reasons[0]


def test_canary_check_alerts_when_the_regrade_is_incomplete() -> None:
    old = {"a": "verified", "b": "not_verified"}
    res = canary_check(old, {"a": "verified", "z": "verified"}, max_flip_rate=0.5)
    assert res.missing == ["b"] and res.extra == ["z"]
    assert res.alert and "not re-graded" in res.reasons[-1]
    with pytest.raises(ValueError, match="decisions outside"):
        canary_check({"a": "yes"}, {"a": "verified"})


def test_regrade_trigger_rules() -> None:
    same = needs_canary_regrade("p@1", "p@1", "r@a", "r@a", {"j": "m1"}, {"j": "m1"})
    assert not same and same.reasons == []
    rubric = needs_canary_regrade("p@1", "p@1", "r@a", "r@b", {"j": "m1"}, {"j": "m1"})
    assert rubric and rubric.reasons == ["rubric changed: r@a -> r@b"]
    model = needs_canary_regrade("p@1", "p@2", "r@a", "r@a", {"j": "m1"}, {"j": "m2", "k": "m3"})
    assert model
    assert "judge 'j' model changed: 'm1' -> 'm2'" in model.reasons
    assert "judge 'k' added with model 'm3'" in model.reasons
    panel_only = needs_canary_regrade("p@1", "p@2", "r@a", "r@a", ["m1"], ["m1"])
    assert panel_only and panel_only.reasons == ["panel changed: p@1 -> p@2"]
    swapped = needs_canary_regrade("p@1", "p@1", "r@a", "r@a", ["m1", "m2"], ["m2", "m1"])
    assert not swapped
