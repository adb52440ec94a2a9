"""Replay of recorded judge outputs: real G-Eval replies on Topical-Chat, and the CLI."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from app.cli import app
from calibration.replay import (
    AdaptivePolicy,
    ReplayInputError,
    compare_policies,
    load_recordings,
    parse_scale,
    replay,
    score_item,
)
from judge.parsing import parse_scale_score
from tests.conftest import shared_dataset

DIMENSIONS = {
    "nat": ("naturalness", 1.0, 3.0),
    "coh": ("coherence", 1.0, 3.0),
    "eng": ("engagingness", 1.0, 3.0),
    "gro": ("groundedness", 0.0, 1.0),
}
runner = CliRunner()


@cache
def _recordings(short: str, mode: str = "geval") -> list[dict]:
    return load_recordings(shared_dataset(f"topical_chat_judgments/gpt3.5_{short}_{mode}.json"))


def _first_number(text: str | None, low: float, high: float) -> float | None:
    """The naive parser the dataset README warns about: the first number in the reply."""
    match = re.search(r"\d+(?:\.\d+)?", text or "")
    return float(match.group()) if match else None


def _unparseable_as_zero(text: str | None, low: float, high: float) -> float | None:
    value = parse_scale_score(text, low, high)
    return 0.0 if value is None else value


@pytest.mark.parametrize("short", sorted(DIMENSIONS))
def test_real_geval_correlations_are_in_the_published_range(short: str) -> None:
    # G-Eval / "A Closer Look" report turn-level correlations of roughly 0.3-0.7 for
    # gpt-3.5 judges on Topical-Chat; a broken parser or a mis-joined human score lands near 0.
    name, low, high = DIMENSIONS[short]
    result = replay(_recordings(short), dimension=name, low=low, high=high, group_by="source")
    out = result.to_dict()
    assert out["n_items"] >= 350
    for key in ("pearson", "spearman", "kendall", "group_pearson", "group_spearman"):
        assert 0.25 < out[key] < 0.75, (key, out[key])
    assert out["kendall"] < out["spearman"]  # tau is always smaller in magnitude here
    assert 40 <= out["groups_used"] <= out["groups_total"] == 60
    assert out["samples_used"] == 20 * out["items_total"]


def test_scale_aware_parser_beats_first_number_parser() -> None:
    # Groundedness replies often quote the fact ("... until 1805 ...") before the score.
    items = _recordings("gro")
    kwargs: dict[str, Any] = {"dimension": "groundedness", "low": 0.0, "high": 1.0}
    good = replay(items, **kwargs).to_dict()
    naive = replay(items, parser=_first_number, **kwargs).to_dict()
    assert good["pearson"] > naive["pearson"] + 0.2
    assert good["spearman"] > naive["spearman"]


def test_scale_aware_parser_beats_unparseable_as_zero() -> None:
    # analyze_rate replies such as "Good." carry no score; scoring them 0 drags items down.
    items = _recordings("nat", "analyze_rate")
    kwargs: dict[str, Any] = {"dimension": "naturalness", "low": 1.0, "high": 3.0}
    good = replay(items, **kwargs).to_dict()
    zero = replay(items, parser=_unparseable_as_zero, **kwargs).to_dict()
    assert good["unparseable"] > 0 and zero["unparseable"] == 0
    assert good["pearson"] > zero["pearson"]
    assert good["spearman"] > zero["spearman"] + 0.005


def test_unparseable_reply_is_left_out_of_the_mean_not_scored_zero() -> None:
    items = _recordings("gro")
    # Item 44 (index 43), sample 9 stops at "- Groundedness" with no score (checked by eye).
    replies = items[43]["all_responses"]
    assert replies[8].rstrip().endswith("- Groundedness")
    mean, used, parsed, unparseable = score_item(replies, low=0, high=1)
    others = [parse_scale_score(r, 0, 1) for i, r in enumerate(replies) if i != 8]
    assert unparseable == 1 and parsed == 19 and used == 20
    assert mean == pytest.approx(sum(v for v in others if v is not None) / 19)


def test_unparseable_count_and_items_without_any_score() -> None:
    items = [
        {"g": "a", "scores": {"q": 1.0}, "all_responses": ["Score: 1", "no idea", "2"]},
        {"g": "a", "scores": {"q": 2.0}, "all_responses": ["1. Quality: 2", "7", "3"]},
        {"g": "b", "scores": {"q": 3.0}, "all_responses": ["3/3", "3", "3"]},
        {"g": "b", "scores": {"q": 2.5}, "all_responses": ["good", "fine", "ok"]},
        {"g": "b", "scores": {"q": 1.5}, "all_responses": ["1", "2", "2"]},
    ]
    out = replay(items, dimension="q", low=1, high=3).to_dict()
    assert out["unparseable"] == 5  # "no idea", "7" (outside 1-3), "good", "fine", "ok"
    assert out["items_without_score"] == 1
    assert out["n_items"] == 4
    assert out["samples_used"] == 15


def test_samples_k_uses_the_first_k_replies() -> None:
    items = _recordings("coh")
    one = replay(items, dimension="coherence", low=1, high=3, samples=1)
    assert one.samples_used == len(items)
    for item, scored in zip(items[:20], one.items[:20], strict=True):
        assert scored.score == parse_scale_score(item["all_responses"][0], 1, 3)
    five = replay(items, dimension="coherence", low=1, high=3, samples=5).to_dict()
    full = replay(items, dimension="coherence", low=1, high=3).to_dict()
    assert five["samples_used"] == 5 * len(items)
    assert one.to_dict()["pearson"] < five["pearson"] < full["pearson"]  # more samples help


def test_adaptive_policy_stops_early_on_agreement_and_late_on_disagreement() -> None:
    policy = AdaptivePolicy(min_samples=3, tolerance=0.1, prior_weight=1.0)
    # Unanimous: SE = width / (2n) <= 0.1 * width  ->  n = 5.
    assert policy.samples_needed([3.0] * 20, low=1, high=3) == 5
    # An unparseable reply costs a sample but carries no score.
    assert policy.samples_needed([3.0, None, 3.0, 3.0, 3.0, 3.0], low=1, high=3) == 6
    # Replies spread over the whole scale never settle within 20.
    assert policy.samples_needed([1.0, 3.0] * 10, low=1, high=3) == 20
    with pytest.raises(ValueError, match="tolerance"):
        AdaptivePolicy(tolerance=0)


def test_adaptive_uses_fewer_samples_on_real_replies() -> None:
    items = _recordings("eng")
    out = compare_policies(items, dimension="engagingness", low=1, high=3, group_by="source")
    assert out["samples_used"] < 0.6 * out["fixed"]["samples_used"]
    assert out["samples_saved"] == pytest.approx(
        1 - out["samples_used"] / out["fixed"]["samples_used"]
    )
    assert out["delta"]["pearson"] == pytest.approx(out["pearson"] - out["fixed"]["pearson"])
    assert abs(out["delta"]["pearson"]) < 0.1


def test_parse_scale_rejects_bad_input() -> None:
    assert parse_scale("0:1") == (0.0, 1.0)
    for bad in ("3", "3:1", "a:b", "1:2:3", "1:1"):
        with pytest.raises(ValueError):
            parse_scale(bad)


def test_unknown_dimension_lists_the_known_ones() -> None:
    with pytest.raises(ReplayInputError, match="coherence"):
        replay(_recordings("coh")[:10], dimension="fluency", low=1, high=3)


# --- CLI ----------------------------------------------------------------------------------


def test_cli_json_has_the_contract_keys() -> None:
    path = shared_dataset("topical_chat_judgments/gpt3.5_nat_geval.json")
    args = ["replay", str(path), "--dimension", "naturalness", "--scale", "1:3"]
    result = runner.invoke(app, [*args, "--group-by", "source", "--samples", "3", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    contract = {
        "n_items",
        "pearson",
        "spearman",
        "kendall",
        "group_pearson",
        "group_spearman",
        "group_kendall",
        "groups_used",
        "samples_used",
        "unparseable",
    }
    assert contract <= set(out)
    assert out["samples_used"] == 3 * out["items_total"]
    adaptive = runner.invoke(app, [*args, "--policy", "adaptive", "--json"])
    assert adaptive.exit_code == 0, adaptive.output
    data = json.loads(adaptive.stdout)
    assert data["samples_used"] < data["fixed"]["samples_used"]
    assert data["group_pearson"] is None  # no --group-by


def test_cli_table_without_json() -> None:
    path = shared_dataset("topical_chat_judgments/gpt3.5_gro_geval.json")
    result = runner.invoke(app, ["replay", str(path), "-d", "groundedness", "--scale", "0:1"])
    assert result.exit_code == 0, result.output
    assert "pearson" in result.stdout and "unparseable" in result.stdout


def test_cli_errors(tmp_path: Path) -> None:
    missing = runner.invoke(
        app, ["replay", str(tmp_path / "nope.json"), "-d", "q", "--scale", "1:3"]
    )
    assert missing.exit_code == 2 and "not found" in missing.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"scores": {"q": 1}, "all_responses": ["1"]}\n{"scores": oops}\n')
    broken = runner.invoke(app, ["replay", str(bad), "-d", "q", "--scale", "1:3"])
    assert broken.exit_code == 2 and "line 2" in broken.stderr
    scale = runner.invoke(app, ["replay", str(bad), "-d", "q", "--scale", "3-1"])
    assert scale.exit_code == 2 and "MIN:MAX" in scale.stderr
    policy = runner.invoke(app, ["replay", str(bad), "-d", "q", "--scale", "1:3", "--policy", "x"])
    assert policy.exit_code == 2 and "adaptive" in policy.stderr
