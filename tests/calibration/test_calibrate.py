"""`judge calibrate`: join of verdicts and labels, agreement values computed by hand, CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from app.cli import app
from calibration.join import CalibrationInputError, UnlabelledVerdicts, join, load_files
from calibration.report import BLOCK_KEYS, calibrate, reliability

FIXTURES = Path(__file__).parent / "fixtures"
SMALL_V = FIXTURES / "verdicts_small.jsonl"
SMALL_L = FIXTURES / "labels_small.jsonl"
CONTRACT = {
    "n",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "cohen_kappa",
    "cohen_kappa_ci",
    "krippendorff_alpha",
    "confusion",
    "abstain_rate",
    "by",
}
runner = CliRunner()


def _verdict(oid: str, decision: str, confidence: float = 0.9) -> dict:
    return {
        "outcome_id": oid,
        "decision": decision,
        "confidence": confidence,
        "rubric": "r@1",
        "panel": "p@1",
    }


@pytest.fixture(scope="module")
def small() -> dict:
    verdicts, labels = load_files(SMALL_V, SMALL_L)
    return calibrate(verdicts, labels, seed=1, n_boot=200).to_dict()


def test_small_fixture_matches_hand_computation(small: dict) -> None:
    # Compared outcomes (o2's two labellers tie and o8 abstains):
    #   o1 V/T (the later o1 verdict wins), o3 V/T (2 of 3 labellers say resolved) -> TP = 2
    #   o4 V/F -> FP = 1;  o5 N/F (qa1's later label wins), o6 N/F -> TN = 2;  o7 N/T -> FN = 1
    assert set(small) >= CONTRACT
    assert small["n"] == 6
    assert small["accuracy"] == pytest.approx(4 / 6)
    assert small["precision"] == pytest.approx(2 / 3)
    assert small["recall"] == pytest.approx(2 / 3)
    assert small["f1"] == pytest.approx(2 / 3)
    # p_o = 4/6, p_e = 0.5 * 0.5 + 0.5 * 0.5 = 0.5 -> kappa = (2/3 - 1/2) / (1/2) = 1/3
    assert small["cohen_kappa"] == pytest.approx(1 / 3)
    lo, hi = small["cohen_kappa_ci"]
    assert -1 <= lo < 1 / 3 < hi <= 1
    # Nominal alpha, 2 coders x 6 units: 1 - (12 - 1) * 4 / (2 * 6 * 6) = 7/18
    assert small["krippendorff_alpha"] == pytest.approx(7 / 18)
    assert small["confusion"]["matrix"] == [[2, 1], [1, 2]]
    assert small["abstain_rate"] == pytest.approx(1 / 7)


def test_small_fixture_human_ceiling(small: dict) -> None:
    # Multi-labelled outcomes: o2 {T, F}, o3 {T, T, F}, o6 {F, F} (o5's two labels are one
    # labeller's relabel). Coincidences: o_TT = 1, o_FF = 2, o_TF = o_FT = 2; n_T = 3, n_F = 4,
    # alpha = 1 - (7 - 1) * 2 / (3 * 4) = 0; pairwise agreement per unit 0, 1/3, 1.
    ceiling = small["human_ceiling"]
    assert ceiling["n_units"] == 3
    assert ceiling["krippendorff_alpha"] == pytest.approx(0.0)
    assert ceiling["percent_agreement"] == pytest.approx((0 + 1 / 3 + 1) / 3)


def test_small_fixture_by_judge_and_criterion(small: dict) -> None:
    judges = small["by"]["judge"]
    assert set(judges) == {"llm-a", "signals"}
    assert judges["llm-a"]["accuracy"] == pytest.approx(4 / 6)
    signals = judges["signals"]
    # signals says not_verified everywhere and is unscored on o8 (an abstention).
    assert signals["n"] == 6 and signals["abstain_rate"] == pytest.approx(1 / 7)
    assert signals["confusion"]["matrix"] == [[0, 3], [0, 3]]
    assert signals["accuracy"] == pytest.approx(0.5)
    assert signals["cohen_kappa"] == pytest.approx(0.0)
    criterion = small["by"]["criterion"]["request_understood"]
    # labelled on o1 (T, judge passed), o4 (F, judge passed), o5 (F, judge failed)
    assert criterion["n"] == 3
    assert criterion["accuracy"] == pytest.approx(2 / 3)
    assert criterion["confusion"]["labels"] == ["pass", "fail"]
    assert criterion["confusion"]["matrix"] == [[1, 0], [1, 1]]


def test_small_fixture_join_counts(small: dict) -> None:
    counts = small["counts"]
    assert counts["verdicts"] == 10 and counts["duplicate_verdicts"] == 1
    assert counts["joined"] == 8  # o1..o8
    assert counts["verdicts_without_label"] == 1  # o9
    assert counts["labels_without_verdict"] == 1  # o10
    assert counts["superseded_labels"] == 1  # o5's earlier label by qa1
    assert counts["tied_labels"] == 1  # o2
    assert counts["compared"] == 7


def test_seed_makes_intervals_reproducible() -> None:
    verdicts, labels = load_files(SMALL_V, SMALL_L)
    a = calibrate(verdicts, labels, seed=5, n_boot=300, by=()).to_dict()
    b = calibrate(verdicts, labels, seed=5, n_boot=300, by=()).to_dict()
    assert a["cohen_kappa_ci"] == b["cohen_kappa_ci"]
    assert a["by"] == {}


def test_join_edge_cases() -> None:
    verdicts = [_verdict("a", "verified"), _verdict("b", "not_verified"), _verdict("c", "verified")]
    labels: list[Any] = [
        {"outcome_id": "a", "resolved": True, "by": "x"},
        {"outcome_id": "a", "resolved": True, "by": "x"},  # the same labeller again
        {"outcome_id": "b", "resolved": False},  # anonymous
        {"outcome_id": "b", "resolved": True},  # another anonymous labeller -> tie
        {"outcome_id": "z", "resolved": True, "by": "x"},
        {"id": "c", "kind": "support_ticket", "conversation": [{"role": "customer", "text": "hi"}]},
    ]
    result = join(verdicts, labels)
    assert result.counts["joined"] == 2  # a, b (c's outcome has no label)
    assert result.counts["superseded_labels"] == 1
    assert result.counts["tied_labels"] == 1
    assert result.counts["verdicts_without_label"] == 1
    assert result.counts["labels_without_verdict"] == 1
    assert [u.outcome_id for u in result.compared] == ["a"]


def test_no_overlap_is_an_error_that_says_so() -> None:
    with pytest.raises(ValueError, match="none in common"):
        calibrate([_verdict("a", "verified")], [{"outcome_id": "b", "resolved": True}])


def test_invalid_label_names_the_field() -> None:
    with pytest.raises(CalibrationInputError, match="resolved"):
        join([_verdict("a", "verified")], [{"outcome_id": "a", "resolved": "maybe"}])


def test_all_abstain_gives_undefined_statistics_not_a_crash() -> None:
    out = calibrate(
        [_verdict("a", "abstain"), _verdict("b", "abstain")],
        [{"outcome_id": "a", "resolved": True}, {"outcome_id": "b", "resolved": False}],
    ).to_dict()
    assert out["n"] == 0 and out["abstain_rate"] == 1.0
    assert out["cohen_kappa"] is None and out["accuracy"] is None


def test_reliability_bins_by_hand() -> None:
    r = reliability([0.92, 0.98, 0.61, 0.65, 0.69], [True, True, True, False, False], bins=5)
    assert [(b.count, b.accuracy) for b in r.bins] == [(3, 1 / 3), (2, 1.0)]
    # ECE = 3/5 * |1/3 - 0.65| + 2/5 * |1 - 0.95|
    assert r.ece == pytest.approx(3 / 5 * abs(1 / 3 - 0.65) + 2 / 5 * 0.05)


def test_medium_fixture_over_time_and_reliability() -> None:
    verdicts, labels = load_files(
        FIXTURES / "verdicts_medium.jsonl", FIXTURES / "labels_medium.jsonl"
    )
    out = calibrate(verdicts, labels, seed=0, n_boot=200).to_dict()
    points = out["over_time"]["points"]
    assert len(points) >= 10
    assert [p["at"] for p in points] == sorted(p["at"] for p in points)
    # The fixture's judge gets worse in its last third: the rolling kappa ends lower.
    assert points[-1]["cohen_kappa"] < max(p["cohen_kappa"] for p in points) - 0.2
    assert sum(b["count"] for b in out["reliability"]["bins"]) == out["n"]


# --- CLI ----------------------------------------------------------------------------------


def test_cli_json(tmp_path: Path) -> None:
    args = ["calibrate", "--verdicts", str(SMALL_V), "--labels", str(SMALL_L), "--seed", "1"]
    result = runner.invoke(app, [*args, "--json", "--by", "judge"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out) >= CONTRACT
    assert set(out["by"]) == {"judge"}
    assert out["accuracy"] == pytest.approx(4 / 6)
    table = runner.invoke(app, args)
    assert table.exit_code == 0 and "llm-a" in table.stdout


def test_cli_errors(tmp_path: Path) -> None:
    missing = runner.invoke(
        app, ["calibrate", "--verdicts", str(tmp_path / "v.jsonl"), "--labels", str(SMALL_L)]
    )
    assert missing.exit_code == 2 and "not found" in missing.stderr
    bad = tmp_path / "labels.jsonl"
    bad.write_text('{"outcome_id": "o1", "resolved": true}\n\n{"outcome_id": "o2", resolved}\n')
    broken = runner.invoke(app, ["calibrate", "--verdicts", str(SMALL_V), "--labels", str(bad)])
    assert broken.exit_code == 2 and "line 3" in broken.stderr
    swapped = runner.invoke(
        app, ["calibrate", "--verdicts", str(SMALL_V), "--labels", str(SMALL_V)]
    )
    assert swapped.exit_code == 2 and "--verdicts" in swapped.stderr
    grouping = runner.invoke(
        app, ["calibrate", "--verdicts", str(SMALL_V), "--labels", str(SMALL_L), "--by", "model"]
    )
    assert grouping.exit_code == 2 and "judge" in grouping.stderr


def test_the_typed_report_is_the_json_report() -> None:
    verdicts, labels = load_files(SMALL_V, SMALL_L)
    report = calibrate(verdicts, labels, seed=1, n_boot=200)
    data = report.to_dict()
    assert set(BLOCK_KEYS) <= set(data)
    assert data["n"] == report.panel.n and data["n_abstain"] == report.panel.n_abstain
    assert data["cohen_kappa_ci"] == list(report.panel.cohen_kappa_ci)
    assert data["confusion"]["matrix"] == [list(r) for r in report.panel.confusion.matrix]
    for grouping, blocks in report.by.items():
        for name, block in blocks.items():
            assert data["by"][grouping][name]["n"] == block.agreement.n
    assert json.loads(json.dumps(data, allow_nan=False)) == data


@settings(max_examples=40, deadline=None)
@given(
    verdicts=st.lists(
        st.tuples(
            st.sampled_from([f"o{i}" for i in range(8)]),
            st.sampled_from(["verified", "not_verified", "abstain"]),
        ),
        min_size=1,
        max_size=20,
    ),
    labelled=st.sets(st.sampled_from([f"o{i}" for i in range(10)]), min_size=1),
    resolved=st.booleans(),
)
def test_counting_the_unlabelled_verdicts_gives_the_report_of_passing_them(
    verdicts: list[tuple[str, str]], labelled: set[str], resolved: bool
) -> None:
    """A store passes only the labelled outcomes' verdicts and counts the rest: same report."""
    every = [_verdict(oid, decision) for oid, decision in verdicts]
    labels = [
        {"outcome_id": oid, "resolved": resolved ^ (n % 2 == 0), "by": "qa"}
        for n, oid in enumerate(sorted(labelled))
    ]
    kept = [v for v in every if v["outcome_id"] in labelled]
    left_out = [v for v in every if v["outcome_id"] not in labelled]
    tally = UnlabelledVerdicts(
        verdicts=len(left_out), outcomes=len({v["outcome_id"] for v in left_out})
    )
    try:
        whole = calibrate(every, labels, seed=3, n_boot=100).to_dict()
    except ValueError as exc:
        with pytest.raises(ValueError) as raised:
            calibrate(kept, labels, seed=3, n_boot=100, unlabelled=tally)
        assert str(raised.value) == str(exc)
        return
    assert calibrate(kept, labels, seed=3, n_boot=100, unlabelled=tally).to_dict() == whole
    assert join(kept, labels, unlabelled=tally).counts == join(every, labels).counts


def test_an_impossible_unlabelled_count_is_refused() -> None:
    with pytest.raises(ValueError, match="unlabelled verdicts must be >= 0"):
        UnlabelledVerdicts(verdicts=-1, outcomes=0)
    with pytest.raises(ValueError, match=r"between 0 and the unlabelled verdicts \(0\)"):
        UnlabelledVerdicts(verdicts=0, outcomes=1)
