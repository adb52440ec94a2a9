"""Pairwise replay on LLMBar's recorded judgments: figures recomputed from the rows.

The expected accuracies are LLMBar's own statistics (``../shared/datasets/README.md``: accuracy
averaged over both orders, an unparsed verdict counting as wrong); they are recomputed here from
the raw JSON rows, independently of :mod:`calibration.pairwise_replay`, and compared with it.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from calibration.pairwise_parse import compare_parses
from calibration.pairwise_replay import (
    PairwiseInputError,
    PairwiseJudgment,
    cascade,
    cross_fitted_weights,
    judge_table,
    jury,
    load_judgments,
    policy_table,
    swap_and_agree,
)
from judge.pairwise import parse_preference
from tests.conftest import ROOT, shared_dataset

#: LLMBar's statistics for the plain prompt (MT-Bench: Vanilla_NoRules), rounded to two decimals.
LLMBAR_VANILLA = {
    ("GPT-4", "Natural"): 0.95,
    ("GPT-4", "Adversarial"): 0.81,
    ("GPT-4", "MT-Bench"): 0.81,
    ("ChatGPT", "Natural"): 0.81,
    ("ChatGPT", "Adversarial"): 0.27,
    ("ChatGPT", "MT-Bench"): 0.71,
    ("LLaMA2", "Natural"): 0.81,
    ("LLaMA2", "Adversarial"): 0.33,
    ("LLaMA2", "MT-Bench"): 0.72,
}


@pytest.fixture(scope="module")
def judgments_path() -> Path:
    return shared_dataset("judge_outputs/llmbar_judgments.jsonl")


@pytest.fixture(scope="module")
def raw_rows(judgments_path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in judgments_path.read_text().splitlines() if line]


@pytest.fixture(scope="module")
def table(judgments_path: Path) -> list[dict[str, Any]]:
    return judge_table(load_judgments(judgments_path), n_boot=200, seed=0)


def _by_hand(raw_rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], float]:
    hits: dict[tuple[str, str, str], list[bool]] = defaultdict(list)
    for row in raw_rows:
        group = row["subset"].split("/")[0]
        for order in ("order_original", "order_swapped"):
            hits[(row["judge"], row["strategy"], group)].append(
                row[order]["choice"] == row["label"]
            )
    return {key: sum(v) / len(v) for key, v in hits.items()}


def test_accuracy_per_judge_equals_llmbar_statistics(
    raw_rows: list[dict[str, Any]], table: list[dict[str, Any]]
) -> None:
    by_hand = _by_hand(raw_rows)
    assert len(table) == 18 == len(by_hand)
    for row in table:
        assert row["accuracy"] == pytest.approx(
            by_hand[(row["judge"], row["strategy"], row["group"])], abs=1e-12
        )
        lo, hi = row["accuracy_ci"]
        assert lo <= row["accuracy"] <= hi
    plain = {
        (r["judge"], r["group"]): r["accuracy"]
        for r in table
        if r["strategy"] in ("Vanilla", "Vanilla_NoRules")
    }
    for key, expected in LLMBAR_VANILLA.items():
        assert round(plain[key], 2) == expected, key
    assert sum(r["n_items"] for r in table) == len(raw_rows) == 3714


def test_flip_rates_show_the_position_bias_llmbar_reports(
    raw_rows: list[dict[str, Any]], table: list[dict[str, Any]]
) -> None:
    for row in table:
        both = [
            r
            for r in raw_rows
            if (r["judge"], r["strategy"], r["subset"].split("/")[0])
            == (row["judge"], row["strategy"], row["group"])
            and None not in (r["order_original"]["choice"], r["order_swapped"]["choice"])
        ]
        flips = sum(r["order_original"]["choice"] != r["order_swapped"]["choice"] for r in both)
        assert row["flip_rate"] == pytest.approx(flips / len(both))
        low, high = (0.05, 0.16) if row["judge"] == "GPT-4" else (0.21, 0.45)
        assert low - 0.005 <= row["flip_rate"] <= high + 0.005, row
    assert sum(r["unparsed"] for r in table) == 11
    gpt4 = [r for r in table if r["judge"] == "GPT-4"]
    assert all(r["cohen_kappa"] > 0.5 for r in gpt4)
    # ChatGPT prefers the wrong output on Adversarial items: kappa below chance.
    assert all(
        r["cohen_kappa"] < 0 for r in table if r["group"] == "Adversarial" and r["judge"] != "GPT-4"
    )


def test_policies_recomputed_from_the_rows(raw_rows: list[dict[str, Any]]) -> None:
    rows = [
        PairwiseJudgment(
            r["item_id"],
            r["subset"],
            r["judge"],
            r["strategy"],
            r["label"],
            (r["order_original"]["choice"], r["order_swapped"]["choice"]),
            cost_usd=(1.0, 1.0),
            aux_cost_usd=0.0,
        )
        for r in raw_rows
    ]
    policies = {
        (p["group"], p["strategy"], p["policy"], p["judges"]): p
        for p in policy_table(rows, n_boot=100, seed=0)
    }
    # swap-and-agree for GPT-4 on Natural, by hand
    mine = [
        r
        for r in raw_rows
        if r["judge"] == "GPT-4" and r["strategy"] == "Vanilla" and r["subset"] == "Natural"
    ]
    agreed = [r for r in mine if r["order_original"]["choice"] == r["order_swapped"]["choice"]]
    swap = policies[("Natural", "Vanilla", "swap_agree", "GPT-4")]
    assert swap["abstain_rate"] == pytest.approx(1 - len(agreed) / len(mine))
    assert swap["accuracy"] == pytest.approx(
        sum(r["order_original"]["choice"] == r["label"] for r in agreed) / len(agreed)
    )
    assert swap["cost_per_item_usd"] == 2.0
    # the plain majority jury never beats GPT-4 alone on these subsets
    for group, strategy in (
        ("Natural", "Vanilla"),
        ("Adversarial", "Vanilla"),
        ("MT-Bench", "Vanilla_NoRules"),
    ):
        single = policies[(group, strategy, "single", "GPT-4")]
        majority = policies[(group, strategy, "jury_majority", "ChatGPT+GPT-4+LLaMA2")]
        assert majority["accuracy"] < single["accuracy"]
        assert majority["calls_per_item"] == 3.0


def test_cascade_jury_and_swap_rules() -> None:
    def row(
        judge: str, choices: tuple[int | None, int | None], item: str = "S#0"
    ) -> PairwiseJudgment:
        return PairwiseJudgment(
            item, "Natural", judge, "Vanilla", 1, choices, cost_usd=(1.0, 1.0), aux_cost_usd=0.5
        )

    assert swap_and_agree(row("a", (1, None))).decisions == (None,)
    assert swap_and_agree(row("a", (2, 2))).decisions == (2,)
    out = cascade([row("cheap", (1, 1)), row("dear", (2, 2))])
    assert out.decisions == (1,) and out.calls == 2 and out.cost_usd == 2.5
    out = cascade([row("cheap", (None, None)), row("dear", (1, 2))])
    assert out.decisions == (None,) and out.calls == 4 and out.cost_usd == 5.0
    assert jury([row("a", (1, None)), row("b", (2, None))]).decisions == (None, None)
    with pytest.raises(ValueError, match="one and the same item"):
        jury([row("a", (1, 1)), row("b", (1, 1), item="S#1")])


def test_weighted_jury_weights_come_from_the_other_half() -> None:
    # judge "good" is right on even items only, "bad" on odd items only.
    rows = []
    for k in range(8):
        good = 1 if k % 2 == 0 else 2
        rows.append(PairwiseJudgment(f"S#{k}", "Natural", "good", "Vanilla", 1, (good, good)))
        rows.append(
            PairwiseJudgment(f"S#{k}", "Natural", "bad", "Vanilla", 1, (3 - good, 3 - good))
        )
    weights = cross_fitted_weights(rows)
    assert weights[0] == {"good": 0.0, "bad": 1.0}  # measured on the odd half
    assert weights[1] == {"good": 1.0, "bad": 0.0}


def test_reparse_agrees_with_llmbar_and_explains_the_rest(judgments_path: Path) -> None:
    result = compare_parses(load_judgments(judgments_path), parse_preference)
    assert result["replies"] == 7428
    assert result["agreement"] > 0.99
    disagree = result["disagree"]
    assert sum(disagree.values()) == result["replies"] - result["agree"]
    assert disagree == {
        "verdict_then_discussion": 46,
        "truncated": 5,
        "neither_or_both": 1,
        "no_stated_verdict": 0,
        "recorded_only": 0,
        "other": 0,
    }
    # The last-mention rule misreads chain-of-thought replies that state the verdict first.
    assert disagree["verdict_then_discussion"] == max(disagree.values())
    assert set(result["by_strategy"]) == {"CoT"}


def test_bad_input_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "j.jsonl"
    bad.write_text(
        '{"item_id": "x", "subset": "Natural", "judge": "J", "strategy": "V", "label": 3}\n'
    )
    with pytest.raises(PairwiseInputError, match="line 1: field 'label' must be 1 or 2"):
        load_judgments(bad)


def test_cli_json_plot_and_errors(judgments_path: Path, tmp_path: Path) -> None:
    items = shared_dataset("judge_outputs/llmbar_items.jsonl")
    png = tmp_path / "plot.png"
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "replay-pairwise", str(judgments_path), "--items",
         str(items), "--json", "--n-boot", "100", "--plot", str(png)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert set(result) == {"judges", "policies", "parser", "pricing", "settings"}
    assert png.read_bytes()[:4] == b"\x89PNG"
    priced = {r["judge"]: r["cost_per_call_usd"] for r in result["judges"]}
    assert all(c is not None and c > 0 for c in priced.values())
    cost = {
        (r["judge"], r["group"], r["strategy"]): r["cost_per_call_usd"] for r in result["judges"]
    }
    for (judge, group, strategy), value in cost.items():
        if judge == "GPT-4":  # $30 vs $0.5 per million input tokens, same texts
            assert value > 20 * cost[("ChatGPT", group, strategy)]
    assert result["pricing"]["priced_as"]["GPT-4"]["model"] == "gpt-4-0613"
    assert all(math.isfinite(r["accuracy"]) for r in result["policies"])
    missing = subprocess.run(
        [sys.executable, "-m", "app.cli", "replay-pairwise", str(tmp_path / "nope.jsonl"),
         "--items", str(items)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert missing.returncode == 2
    assert "file not found" in missing.stderr
    unknown = subprocess.run(
        [sys.executable, "-m", "app.cli", "replay-pairwise", str(judgments_path),
         "--items", str(items), "--strategy", "Swap"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert unknown.returncode == 2 and "it has CoT, Metrics_Reference" in unknown.stderr


def test_docs_tables_are_the_commands_output(judgments_path: Path) -> None:
    """Every pairwise table row in docs/calibration.md is printed by the command shown beside it."""
    items = shared_dataset("judge_outputs/llmbar_items.jsonl")
    page = (ROOT / "docs" / "calibration.md").read_text(encoding="utf-8")
    section = page.split("\n## Pairwise replay", 1)[1].split("\n## ", 1)[0]
    printed = ""
    for strategies in (("Vanilla", "Vanilla_NoRules"), ("CoT", "Metrics_Reference")):
        done = subprocess.run(
            [sys.executable, "-m", "app.cli", "replay-pairwise", str(judgments_path),
             "--items", str(items), "--markdown",
             *(arg for s in strategies for arg in ("--strategy", s))],
            cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        printed += done.stdout
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    assert len(rows) >= 40
    missing = [line for line in rows if line not in printed.splitlines()]
    assert not missing, f"docs/calibration.md rows not printed by the command: {missing[:3]}"
    reparse = [line for line in printed.splitlines() if "replies agree" in line]
    assert reparse[1] in section
