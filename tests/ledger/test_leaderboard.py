"""`judge leaderboard`: ranking rules, the results CSV, and the ledger by model path."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from ledger.economics import breakeven, tco
from ledger.leaderboard import Entry, LeaderboardInputError, entries_from_csv, rank
from tests.conftest import shared_dataset
from tests.ledger.conftest import run, run_json

TAU2 = [
    "--rate-column", "pass_1", "--cost-column", "avg_cost_usd_per_trajectory",
    "--name-column", "model", "--name-column", "reasoning_effort",
]  # fmt: skip


def test_rank_prices_with_economics_and_states_undefined_cases() -> None:
    rows = rank(
        [
            Entry("none", 0.0, 0.05, 10),
            Entry("free", 0.5, 0.0, None),
            Entry("unknown", 0.6, None, 10),
            Entry("dear", 0.9, 0.5, 10),
        ],
        labor=4.0,
    )
    assert [r["name"] for r in rows] == ["dear", "unknown", "free", "none"]
    dear, unknown, free, none = rows
    assert dear["tco"] == pytest.approx(tco(token_cost=0.5, p_fail=0.1, labor=4.0))
    assert dear["breakeven_next"] is None  # the next row has no cost
    assert unknown["cost_per_resolved"] is None and unknown["cost_reason"] == "no cost reported"
    assert free["cost_note"].startswith("reported as $0") and free["cost_per_resolved"] == 0.0
    assert all(math.isnan(v) for v in free["resolved_rate_ci"])  # attempts unknown
    assert none["cost_per_resolved"] is None and none["cost_reason"].startswith("undefined")
    expected = breakeven(cost_a=0.05, cost_b=0.0, labor=4.0, p_fail_a=1.0, p_fail_b=0.5)
    assert free["breakeven_next"]["flip_rule"] == expected.flip_rule == "dominates"
    lo, hi = dear["resolved_rate_ci"]
    assert 0.5 < lo < 0.9 < hi <= 1.0
    with pytest.raises(LeaderboardInputError, match=r"not in \[0, 1\]"):
        rank([Entry("x", 1.5, 0.1)], labor=1.0)


def test_tau2_cost_per_resolved_task_several_fold_at_similar_token_prices() -> None:
    """Claude Sonnet 4.5 and GPT-5.2 (high) cost about the same per output token, yet a resolved
    tau2-bench task costs 3-5.5x more with Sonnet (pass^1 and cost per trajectory as reported)."""
    from judge.model_client import token_prices

    path = shared_dataset("leaderboards/tau2_leaderboard_submissions.csv")
    sonnet_out, gpt_out = token_prices("claude-sonnet-4-5")[1], token_prices("gpt-5.2")[1]
    assert sonnet_out / gpt_out == pytest.approx(15 / 14)
    ratios = {}
    for domain in ("airline", "retail", "telecom"):
        entries, counts = entries_from_csv(
            path, name_columns=["model", "reasoning_effort"], rate_column="pass_1",
            cost_column="avg_cost_usd_per_trajectory", where={"domain": domain},
        )  # fmt: skip
        per = {r["name"]: r["cost_per_resolved"] for r in rank(entries, labor=5)}
        ratios[domain] = per["Claude Sonnet 4.5 · enabled"] / per["GPT-5.2 · high"]
    assert ratios["airline"] == pytest.approx(3.0, abs=0.05)
    assert ratios["retail"] == pytest.approx(4.0, abs=0.05)
    assert ratios["telecom"] == pytest.approx(5.5, abs=0.05)
    all_rows, counts = entries_from_csv(
        path, name_columns=["model"], rate_column="pass_1",
        cost_column="avg_cost_usd_per_trajectory",
    )  # fmt: skip
    assert counts["used"] == len(all_rows) == 28 and counts["rows"] == 155


def test_csv_errors_name_the_fix(tmp_path: Path) -> None:
    bad = tmp_path / "r.csv"
    bad.write_text("name,resolved_rate,cost_per_attempt\na,120,0.1\n", encoding="utf-8")
    with pytest.raises(LeaderboardInputError, match="above 100%; pass --fraction"):
        entries_from_csv(bad, name_columns=["name"], rate_column="resolved_rate",
                         cost_column="cost_per_attempt")  # fmt: skip
    with pytest.raises(LeaderboardInputError, match="no column 'model'; the columns are"):
        entries_from_csv(bad, name_columns=["model"], rate_column="resolved_rate",
                         cost_column="cost_per_attempt")  # fmt: skip
    bad.write_text("name,resolved_rate,cost_per_attempt\na,0.5,-1\n", encoding="utf-8")
    result = run("leaderboard", "--results", str(bad), "--fraction")
    assert result.exit_code == 2 and "must be finite and >= 0" in result.stderr
    result = run("leaderboard")
    assert result.exit_code == 2 and "--results FILE" in result.stderr
    result = run("leaderboard", "--results", str(bad), "--where", "domain")
    assert result.exit_code == 2 and "COLUMN=VALUE" in result.stderr


def test_cli_markdown_from_csv() -> None:
    path = shared_dataset("leaderboards/tau2_leaderboard_submissions.csv")
    result = run("leaderboard", "--results", str(path), *TAU2, "--where", "domain=telecom",
                 "--tasks", "114", "--markdown")  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("| # | agent | resolved (95% CI) | cost/attempt | cost/resolved")
    assert len(lines) == 2 + 8  # the telecom rows that report a cost


def test_from_the_ledger_by_model_path(verified_ledger: tuple[str, Path]) -> None:
    url, _ = verified_ledger
    data = run_json("leaderboard", "--db", url, "--labor", "4")
    rows = {r["name"]: r for r in data["rows"]}
    # the shipped sample: 22 tickets on gpt-4o (10 verified), 28 on gpt-4o-mini (12)
    assert rows["gpt-4o"]["attempts"] == 22
    assert rows["gpt-4o"]["resolved_rate"] == pytest.approx(10 / 22)
    assert rows["gpt-4o-mini"]["resolved_rate"] == pytest.approx(12 / 28)
    breakeven_data = run_json("cost", "breakeven", "--db", url, "--path-a", "gpt-4o-mini",
                              "--path-b", "gpt-4o", "--labor", "4")  # fmt: skip
    assert rows["gpt-4o"]["cost_per_attempt"] == pytest.approx(
        breakeven_data["paths"]["b"]["token_cost"]
    )
    assert run("leaderboard", "--db", url, "--tasks", "3").exit_code == 2


def test_docs_leaderboard_table_is_the_commands_output() -> None:
    path = shared_dataset("leaderboards/tau2_leaderboard_submissions.csv")
    page = (Path(__file__).resolve().parents[2] / "docs" / "costs.md").read_text(encoding="utf-8")
    result = run(
        "leaderboard", "--results", str(path), "--where", "domain=retail",
        "--name-column", "model", "--name-column", "reasoning_effort", "--name-column", "modality",
        "--rate-column", "pass_1", "--cost-column", "avg_cost_usd_per_trajectory",
        "--tasks", "114", "--detail-column", "submitting_organization", "--labor", "5",
        "--markdown",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() in page


def test_docs_ledger_leaderboard_is_the_commands_output(
    verified_ledger: tuple[str, Path],
) -> None:
    url, _ = verified_ledger
    page = (Path(__file__).resolve().parents[2] / "docs" / "costs.md").read_text(encoding="utf-8")
    result = run("leaderboard", "--db", url, "--labor", "4", "--markdown")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() in page
