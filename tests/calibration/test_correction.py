"""Rogan-Gladen corrected verified counts: literature example, edge rules, simulated coverage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from app.cli import app
from calibration.correction import (
    UndefinedCorrection,
    corrected_count_ci,
    corrected_verified,
    error_rates,
    rogan_gladen,
)


def test_epir_worked_example() -> None:
    # epiR::epi.prev documentation: 150 cows, screening test Se 0.96, Sp 0.89, 23 positive;
    # "the estimated true prevalence of brucellosis in this herd is 5.1 cases per 100 cows".
    estimate = rogan_gladen(23 / 150, sensitivity=0.96, specificity=0.89)
    assert round(100 * estimate, 1) == 5.1
    count = corrected_verified(23, 150, tpr=0.96, fpr=0.11)
    assert count.prevalence == pytest.approx(estimate)
    assert count.corrected == pytest.approx(150 * estimate)
    assert not count.clipped


def test_perfect_judge_needs_no_correction() -> None:
    c = corrected_verified(37, 100, tpr=1.0, fpr=0.0)
    assert c.corrected == pytest.approx(37) and c.prevalence == pytest.approx(0.37)


def test_correction_inverts_the_judge_error_model() -> None:
    # apparent = tpr * p + fpr * (1 - p): correcting it must give p back
    for p, tpr, fpr in [(0.2, 0.9, 0.1), (0.7, 0.75, 0.3), (0.5, 0.6, 0.05)]:
        apparent = tpr * p + fpr * (1 - p)
        assert rogan_gladen(apparent, sensitivity=tpr, specificity=1 - fpr) == pytest.approx(p)


@pytest.mark.parametrize(("tpr", "fpr"), [(0.5, 0.5), (0.3, 0.6)])
def test_uninformative_judge_is_undefined_not_garbage(tpr: float, fpr: float) -> None:
    with pytest.raises(UndefinedCorrection, match="sensitivity \\+ specificity - 1"):
        corrected_verified(40, 100, tpr=tpr, fpr=fpr)


def test_estimates_outside_0_1_are_clipped_and_flagged() -> None:
    low = corrected_verified(2, 100, tpr=0.9, fpr=0.05)  # fewer than the false positives alone
    assert low.prevalence == 0.0 and low.clipped and low.unclipped == pytest.approx(-0.03 / 0.85)
    high = corrected_verified(98, 100, tpr=0.9, fpr=0.05)  # more than a 0.9 TPR can produce
    assert high.prevalence == 1.0 and high.clipped and high.unclipped > 1
    assert high.corrected == 100.0


def test_error_rates_skip_abstentions_and_need_both_classes() -> None:
    rates = error_rates(
        ["verified", "abstain", "not_verified", "verified", "not_verified"],
        ["verified", "not_verified", "verified", "not_verified", "not_verified"],
    )
    assert (rates.tpr, rates.fpr, rates.n_positive, rates.n_negative) == (0.5, 0.5, 2, 2)
    with pytest.raises(ValueError, match="no labelled outcome is not verified"):
        error_rates(["verified", "not_verified"], [True, True])
    with pytest.raises(ValueError, match="human\\[1\\] is 'maybe'"):
        error_rates(["verified", "verified"], [True, "maybe"])


def test_inputs_are_validated_up_front() -> None:
    with pytest.raises(ValueError, match="cannot exceed"):
        corrected_verified(11, 10, tpr=0.9, fpr=0.1)
    with pytest.raises(ValueError, match="n_total is 0"):
        corrected_verified(0, 0, tpr=0.9, fpr=0.1)
    with pytest.raises(ValueError, match="tpr must be a number in \\[0, 1\\]"):
        corrected_verified(1, 10, tpr=1.2, fpr=0.1)
    with pytest.raises(ValueError, match="3 decisions but human has 2"):
        corrected_count_ci(["verified"] * 3, [True, False], n_verified=1, n_total=2)


def simulate_population(
    rng: np.random.Generator, *, prevalence: float, tpr: float, fpr: float, n: int
) -> tuple[np.ndarray, np.ndarray]:
    truth = rng.random(n) < prevalence
    judge = np.where(truth, rng.random(n) < tpr, rng.random(n) < fpr)
    return truth, judge


def decisions(flags: np.ndarray) -> list[str]:
    return ["verified" if f else "not_verified" for f in flags]


def test_known_prevalence_is_recovered_within_the_interval_most_of_the_time() -> None:
    rng = np.random.default_rng(2026)
    prevalence, tpr, fpr = 0.35, 0.85, 0.12
    sims, covered, raw_errors, corrected_errors = 120, 0, [], []
    for _ in range(sims):
        truth, judge = simulate_population(rng, prevalence=prevalence, tpr=tpr, fpr=fpr, n=3000)
        lab_truth, lab_judge = simulate_population(
            rng, prevalence=prevalence, tpr=tpr, fpr=fpr, n=400
        )
        result = corrected_count_ci(
            decisions(lab_judge),
            decisions(lab_truth),
            n_verified=int(judge.sum()),
            n_total=judge.size,
            n=400,
            seed=rng,
        )
        assert result.ci is not None
        true_count = int(truth.sum())  # the population's actual count of resolved outcomes
        covered += result.ci[0] <= true_count <= result.ci[1]
        raw_errors.append(int(judge.sum()) - true_count)
        corrected_errors.append(result.corrected - true_count)
    assert covered / sims >= 0.88, covered / sims  # nominal 0.95
    # the raw count is biased upward by n (FPR (1 - p) - (1 - TPR) p) = 76.5; the correction is not
    assert np.mean(raw_errors) == pytest.approx(76.5, abs=10)
    assert abs(np.mean(corrected_errors)) < 15


def test_interval_is_withheld_when_the_judge_is_barely_informative() -> None:
    rng = np.random.default_rng(4)
    truth, judge = simulate_population(rng, prevalence=0.5, tpr=0.56, fpr=0.5, n=40)
    if (
        error_rates(decisions(judge), decisions(truth)).tpr
        <= error_rates(decisions(judge), decisions(truth)).fpr
    ):
        pytest.skip("this draw is undefined already at the point estimate")
    result = corrected_count_ci(
        decisions(judge), decisions(truth), n_verified=500, n_total=1000, n=500, seed=0
    )
    assert result.ci is None and result.n_undefined > 0.025 * 500
    assert "TPR <= FPR" in (result.ci_reason or "")


# --------------------------------------------------------------------------- CLI


def test_cli_correct_prints_raw_and_corrected_counts(tmp_path: Path) -> None:
    verdicts, labels = tmp_path / "v.jsonl", tmp_path / "l.jsonl"
    rows, label_rows = [], []
    # 100 labelled: 50 truly resolved (45 verified), 50 not (5 verified): TPR 0.9, FPR 0.1
    for i in range(100):
        truth = i < 50
        verified = (i < 45) or (50 <= i < 55)
        rows.append(
            {
                "outcome_id": f"L{i}",
                "decision": "verified" if verified else "not_verified",
                "confidence": 0.9,
                "rubric": "r@1",
                "panel": "p@1",
            }
        )
        label_rows.append({"outcome_id": f"L{i}", "resolved": truth, "by": "qa"})
    # 300 unlabelled: 150 verified, 140 not, 10 abstain
    for i in range(300):
        decision = "verified" if i < 150 else "not_verified" if i < 290 else "abstain"
        rows.append(
            {
                "outcome_id": f"U{i}",
                "decision": decision,
                "confidence": 0.7,
                "rubric": "r@1",
                "panel": "p@1",
            }
        )
    verdicts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    labels.write_text("".join(json.dumps(r) + "\n" for r in label_rows))
    result = CliRunner().invoke(
        app, ["correct", "-v", str(verdicts), "-l", str(labels), "--json", "--n-boot", "300"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["raw_verified"] == 200 and data["n_total"] == 390 and data["n_abstain"] == 10
    assert (data["tpr"], data["fpr"]) == (0.9, 0.1)
    expected = (200 / 390 - 0.1) / 0.8 * 390
    assert data["corrected"] == pytest.approx(expected)
    assert data["ci"][0] < expected < data["ci"][1]
    table = CliRunner().invoke(app, ["correct", "-v", str(verdicts), "-l", str(labels)])
    assert table.exit_code == 0 and "corrected" in table.stdout


def test_cli_correct_refuses_an_uninformative_judge(tmp_path: Path) -> None:
    verdicts, labels = tmp_path / "v.jsonl", tmp_path / "l.jsonl"
    verdicts.write_text(
        "".join(
            json.dumps(
                {
                    "outcome_id": f"T{i}",
                    "decision": "verified",
                    "confidence": 0.9,
                    "rubric": "r@1",
                    "panel": "p@1",
                }
            )
            + "\n"
            for i in range(10)
        )
    )
    labels.write_text(
        "".join(
            json.dumps({"outcome_id": f"T{i}", "resolved": i % 2 == 0}) + "\n" for i in range(10)
        )
    )
    result = CliRunner().invoke(app, ["correct", "-v", str(verdicts), "-l", str(labels)])
    assert result.exit_code == 2
    assert "cannot correct" in result.stderr and "raw count 10 verified of 10" in result.stderr
