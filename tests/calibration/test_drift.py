"""Drift: windows, the change test and its false-alarm rate, PSI, `judge drift`.

Canary checks are tested in test_canary.py."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from app.cli import app
from calibration.drift import (
    LabelledRecord,
    agreement_windows,
    drift_report,
    psi,
    psi_chance,
    two_proportion_ztest,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def make_records(
    agree: list[bool], *, start: int = 0, human: list[bool] | None = None, step_minutes: int = 60
) -> list[LabelledRecord]:
    """Labelled records in time order; the judge agrees with the human where ``agree`` says."""
    out = []
    for i, ok in enumerate(agree):
        h = human[i] if human is not None else i % 3 != 0
        j = h if ok else not h
        out.append(
            LabelledRecord(
                f"T{start + i}",
                T0 + timedelta(minutes=step_minutes * (start + i)),
                "verified" if j else "not_verified",
                human=h,
            )
        )
    return out


def simulate(
    n: int, p_agree: float, rng: np.random.Generator, start: int = 0
) -> list[LabelledRecord]:
    human = list(rng.random(n) < 0.6)
    agree = list(rng.random(n) < p_agree)
    return make_records([bool(a) for a in agree], start=start, human=[bool(h) for h in human])


# --------------------------------------------------------------------------- records


def test_record_normalises_labels_and_times() -> None:
    r = LabelledRecord("T-1", datetime(2026, 3, 1, 12), "not_verified", human=False)
    assert r.human == "not_verified"
    assert r.at.tzinfo is not None and r.at.hour == 12
    assert r.agrees is True
    unlabelled = LabelledRecord("T-2", T0, "verified")
    assert unlabelled.is_pair is False and unlabelled.agrees is None
    abstained = LabelledRecord("T-3", T0, "abstain", human=True)
    assert abstained.is_pair is False


@pytest.mark.parametrize(
    ("judge", "human", "fragment"),
    [("resolved", None, "judge decision 'resolved'"), ("verified", "yes", "human label 'yes'")],
)
def test_record_rejects_unknown_values(judge: str, human: str | None, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        LabelledRecord("T-9", T0, judge, human=human)


# --------------------------------------------------------------------------- windows


def test_count_windows_are_cut_from_the_newest_and_drop_the_oldest_remainder() -> None:
    # 10 pairs, windows of 4: the 2 oldest pairs are left out, the latest window is full
    agree = [False, False, True, True, False, True, True, True, True, False]
    windows = agreement_windows(make_records(agree), window=4)
    assert [(w.n, w.agree) for w in windows] == [(4, 3), (4, 3)]
    assert windows[0].start == T0 + timedelta(hours=2)
    assert windows[-1].end == T0 + timedelta(hours=9)
    assert windows[-1].accuracy == 0.75


def test_windows_count_abstentions_and_unlabelled_verdicts_but_not_in_agreement() -> None:
    recs = make_records([True] * 4)
    recs.insert(2, LabelledRecord("A", T0 + timedelta(hours=1, minutes=30), "abstain", human=True))
    recs.append(LabelledRecord("U", T0 + timedelta(hours=2, minutes=30), "verified"))
    (w,) = agreement_windows(recs, window=4)
    assert (w.n, w.agree, w.n_abstain) == (4, 4, 1)
    # the decision mix counts every verdict in the period: 4 pairs + 1 abstain + 1 unlabelled
    assert sum(w.verdicts.values()) == 6
    assert w.verdicts["abstain"] == 1


def test_day_windows_are_left_open_right_closed_and_end_at_until() -> None:
    recs = make_records([True] * 6, step_minutes=24 * 60)  # one per day, days 0..5
    windows = agreement_windows(recs, days=2, until=T0 + timedelta(days=5))
    assert [w.n for w in windows] == [2, 2, 2]
    assert windows[-1].start == T0 + timedelta(days=3)
    assert windows[-1].end == T0 + timedelta(days=5)
    assert windows[0].start < T0 <= windows[0].end


def test_window_kappa_matches_an_independent_computation() -> None:
    agree = [True, True, False, True, True, True, False, True]
    human = [True, False, True, True, False, False, True, True]
    (w,) = agreement_windows(make_records(agree, human=human), window=8)
    judge = [h if a else not h for a, h in zip(agree, human, strict=True)]
    # kappa by hand from the 2x2 table
    n = len(judge)
    po = sum(j == h for j, h in zip(judge, human, strict=True)) / n
    pj, ph = sum(judge) / n, sum(human) / n
    pe = pj * ph + (1 - pj) * (1 - ph)
    assert w.kappa == pytest.approx((po - pe) / (1 - pe))


def test_window_options_are_validated() -> None:
    recs = make_records([True] * 4)
    with pytest.raises(ValueError, match="not both"):
        agreement_windows(recs, window=2, days=1)
    with pytest.raises(ValueError, match="window must be an integer >= 2"):
        agreement_windows(recs, window=1)
    with pytest.raises(ValueError, match="days must be a positive number"):
        agreement_windows(recs, days=0)


# --------------------------------------------------------------------------- change test


def test_ztest_matches_the_textbook_formula() -> None:
    z, p = two_proportion_ztest(90, 100, 75, 100)
    pooled = 165 / 200
    expected_z = (0.75 - 0.90) / math.sqrt(pooled * (1 - pooled) * (2 / 100))
    assert z == pytest.approx(expected_z)
    assert p == pytest.approx(2 * 0.5 * math.erfc(abs(expected_z) / math.sqrt(2)))
    _, p_less = two_proportion_ztest(90, 100, 75, 100, alternative="decrease")
    assert p_less == pytest.approx(p / 2)
    _, p_up = two_proportion_ztest(75, 100, 90, 100, alternative="decrease")
    assert p_up > 0.99  # an increase is no evidence of a decrease
    assert two_proportion_ztest(50, 50, 40, 40) == (0.0, 1.0)


@pytest.mark.parametrize("alternative", ["two-sided", "decrease"])
@pytest.mark.parametrize("alpha", [0.05, 0.01])
def test_false_alarm_rate_is_about_alpha_by_simulation(alternative: str, alpha: float) -> None:
    # No drift: both windows agree with the same probability. Derivation (module docstring): z is
    # ~N(0, 1), so alerts fire with probability ~alpha. Exact value for these settings is
    # 0.0509 / 0.0494 (alpha 0.05) and 0.0098 / 0.0097 (alpha 0.01).
    rng = np.random.default_rng(20260301)
    sims, n = 20_000, 100
    k1 = rng.binomial(n, 0.85, sims)
    k2 = rng.binomial(n, 0.85, sims)
    alerts = sum(
        two_proportion_ztest(int(a), n, int(b), n, alternative=alternative)[1] < alpha  # type: ignore[arg-type]
        for a, b in zip(k1, k2, strict=True)
    )
    rate = alerts / sims
    sd = math.sqrt(alpha * (1 - alpha) / sims)
    assert abs(rate - alpha) < 4 * sd + 0.002, rate


def test_full_report_false_alarm_rate_under_no_drift() -> None:
    # The whole pipeline (records -> windows -> test -> alert). Exact rate for 60-pair windows at
    # agreement 0.85 and alpha 0.05 (summing binomial probabilities): 0.0469.
    rng = np.random.default_rng(7)
    sims = 800
    alerts = 0
    for _ in range(sims):
        recs = simulate(120, 0.85, rng)
        rep = drift_report(recs, window=60, alpha=0.05, min_verdicts=10**6)
        assert rep.p_value is not None
        alerts += rep.alert
    rate = alerts / sims
    sd = math.sqrt(0.05 * 0.95 / sims)
    assert abs(rate - 0.05) < 3.5 * sd, rate


def test_real_drop_in_agreement_raises_an_alert_with_the_numbers() -> None:
    rng = np.random.default_rng(3)
    recs = simulate(100, 0.92, rng) + simulate(100, 0.65, rng, start=100)
    rep = drift_report(recs, window=100, alpha=0.01)
    assert rep.alert
    assert rep.p_value is not None and rep.p_value < 0.01
    assert rep.statistic is not None and rep.statistic < 0
    assert any("agreement fell" in r for r in rep.reasons)
    assert rep.reference == 0 and rep.latest == 1


def test_too_few_labels_gives_a_warning_not_an_alert() -> None:
    rep = drift_report(make_records([True] * 30), window=50)
    assert not rep.alert and rep.p_value is None
    assert "no change test" in rep.warnings[0]


def test_reference_is_the_oldest_window_with_enough_pairs() -> None:
    recs = make_records([True] * 3, step_minutes=24 * 60)  # days 0..2: a thin first window
    recs += make_records([True] * 40, start=10 * 24, step_minutes=60)  # day 10
    recs += make_records([True] * 40, start=20 * 24, step_minutes=60)  # day 20
    rep = drift_report(recs, days=5, min_pairs=20)
    assert 0 < rep.windows[0].n < 20
    assert rep.reference is not None and rep.windows[rep.reference].n == 40
    assert rep.latest == len(rep.windows) - 1 and rep.p_value is not None


# --------------------------------------------------------------------------- PSI


def test_psi_matches_hand_computation_and_is_zero_for_equal_mixes() -> None:
    value = psi({"verified": 60, "not_verified": 40}, {"verified": 40, "not_verified": 60})
    assert value == pytest.approx(0.2 * math.log(1.5) * 2)
    assert psi({"a": 3, "b": 1}, {"a": 300, "b": 100}) == pytest.approx(0.0)


def test_psi_uses_epsilon_for_an_empty_category() -> None:
    ref = {"verified": 50, "not_verified": 50}
    cur = {"verified": 45, "not_verified": 45, "abstain": 10}
    eps = 1e-4
    expected = (0.45 - 0.5) * math.log(0.45 / 0.5) * 2 + (0.1 - eps) * math.log(0.1 / eps)
    assert psi(ref, cur, epsilon=eps) == pytest.approx(expected)
    assert math.isfinite(psi(cur, ref))
    with pytest.raises(ValueError, match="at least one verdict"):
        psi({}, cur)


def test_psi_chance_approximation_matches_simulation() -> None:
    rng = np.random.default_rng(11)
    shares = [0.6, 0.3, 0.1]
    n = 300
    a = rng.multinomial(n, shares, size=4000)
    b = rng.multinomial(n, shares, size=4000)
    keys = ("verified", "not_verified", "abstain")
    values = np.array(
        [
            psi(dict(zip(keys, x, strict=True)), dict(zip(keys, y, strict=True)))
            for x, y in zip(a, b, strict=True)
        ]
    )
    threshold = 0.02
    simulated = float(np.mean(values >= threshold))
    approx = psi_chance(threshold, n, n, categories=3)
    assert approx == pytest.approx(simulated, abs=0.03)


def test_major_verdict_mix_shift_alerts_and_moderate_one_warns() -> None:
    stable = make_records([True] * 120, human=[i % 2 == 0 for i in range(120)])
    shifted = make_records([True] * 120, start=120, human=[i % 5 != 0 for i in range(120)])
    rep = drift_report(stable + shifted, window=120, min_verdicts=100)
    assert rep.psi is not None and rep.psi >= 0.25
    assert rep.alert and any("verdict mix shifted" in r for r in rep.reasons)

    moderate = make_records([True] * 120, start=120, human=[i % 3 != 0 for i in range(120)])
    rep = drift_report(stable + moderate, window=120, min_verdicts=100)
    assert rep.psi is not None and 0.1 <= rep.psi < 0.25
    assert not rep.alert
    assert any("moderate verdict-mix shift" in w for w in rep.warnings)


# --------------------------------------------------------------------------- CLI


def write_files(tmp_path: Path, recs: list[LabelledRecord]) -> tuple[Path, Path]:
    verdicts = tmp_path / "verdicts.jsonl"
    labels = tmp_path / "labels.jsonl"
    with verdicts.open("w") as v, labels.open("w") as lab:
        for r in recs:
            v.write(
                json.dumps(
                    {
                        "outcome_id": r.outcome_id,
                        "decision": r.judge,
                        "confidence": 0.9,
                        "rubric": "support-resolution@abc",
                        "panel": "default@1234",
                    }
                )
                + "\n"
            )
            if r.human is not None:
                lab.write(
                    json.dumps(
                        {
                            "outcome_id": r.outcome_id,
                            "resolved": r.human == "verified",
                            "by": "qa",
                            "at": r.at.isoformat(),
                        }
                    )
                    + "\n"
                )
    return verdicts, labels


def test_cli_drift_json_reports_windows_and_alert(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    recs = simulate(100, 0.95, rng) + simulate(100, 0.6, rng, start=100)
    verdicts, labels = write_files(tmp_path, recs)
    result = CliRunner().invoke(
        app,
        [
            "drift",
            "--verdicts",
            str(verdicts),
            "--labels",
            str(labels),
            "--window",
            "100",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [w["n"] for w in data["windows"]] == [100, 100]
    assert data["alert"] is True and data["p_value"] < 0.01

    table = CliRunner().invoke(
        app,
        ["drift", "-v", str(verdicts), "-l", str(labels), "-w", "100", "--fail-on-alert"],
    )
    assert table.exit_code == 1
    assert "ALERT" in table.stdout and "agreement fell" in table.stdout


def test_cli_drift_errors_name_the_problem(tmp_path: Path) -> None:
    verdicts, labels = write_files(tmp_path, make_records([True] * 4))
    no_time = tmp_path / "labels-no-time.jsonl"
    no_time.write_text('{"outcome_id": "T0", "resolved": false}\n')
    result = CliRunner().invoke(app, ["drift", "-v", str(verdicts), "-l", str(no_time)])
    assert result.exit_code == 2
    assert "has no 'at' time" in result.stderr
    both = CliRunner().invoke(
        app, ["drift", "-v", str(verdicts), "-l", str(labels), "--window", "5", "--days", "2"]
    )
    assert both.exit_code == 2 and "not both" in both.stderr
    missing = CliRunner().invoke(
        app, ["drift", "-v", str(tmp_path / "nope.jsonl"), "-l", str(labels)]
    )
    assert missing.exit_code == 2 and "file not found" in missing.stderr
