"""`judge calibrate` on verdicts from any tool: two columns (id, decision) in CSV or JSONL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app
from calibration.join import CalibrationInputError, load_files
from calibration.report import calibrate
from calibration.tool_verdicts import VerdictColumns, to_tool_verdict

FIXTURES = Path(__file__).parent / "fixtures"
SMALL_V = FIXTURES / "verdicts_small.jsonl"
SMALL_L = FIXTURES / "labels_small.jsonl"
#: The final decision per outcome of verdicts_small.jsonl, as another tool would export it.
DECISIONS = {
    "o1": "pass",
    "o2": "pass",
    "o3": "pass",
    "o4": "pass",
    "o5": "fail",
    "o6": "fail",
    "o7": "fail",
    "o8": "abstain",
    "o9": "pass",
}
runner = CliRunner()


def _two_column_csv(path: Path, header: str = "outcome_id,decision") -> Path:
    lines = [header] + [f"{oid},{value}" for oid, value in DECISIONS.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _invoke(*args: str) -> dict:
    result = runner.invoke(
        app, ["calibrate", *args, "--labels", str(SMALL_L), "--json", "--seed", "1"]
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_two_column_csv_from_another_tool_gives_the_native_figures(tmp_path: Path) -> None:
    native = _invoke("--verdicts", str(SMALL_V))
    csv_report = _invoke("--verdicts", str(_two_column_csv(tmp_path / "tool.csv")))
    for key in (
        "n",
        "accuracy",
        "precision",
        "recall",
        "f1",
        "cohen_kappa",
        "confusion",
        "abstain_rate",
    ):
        assert csv_report[key] == native[key], key
    assert csv_report["accuracy"] == pytest.approx(4 / 6)
    assert csv_report["reliability"]["bins"] == []
    assert csv_report["reliability"]["note"] == "skipped: the verdicts carry no confidence"
    assert csv_report["by"]["judge"] == {} and csv_report["by"]["criterion"] == {}


def test_columns_named_differently_are_mapped_by_options(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text(
        "ticket,judge_says,extra\n"
        + "".join(
            f"{oid},{'yes' if v == 'pass' else 'no' if v == 'fail' else 'abstain'},x\n"
            for oid, v in DECISIONS.items()
        ),
        encoding="utf-8",
    )
    out = _invoke(
        "--verdicts", str(path), "--id-column", "ticket", "--decision-column", "judge_says"
    )
    assert out["accuracy"] == pytest.approx(4 / 6)
    assert out["counts"]["joined"] == 8


def test_score_with_threshold_and_boolean_jsonl(tmp_path: Path) -> None:
    scores = tmp_path / "scores.csv"
    scores.write_text("outcome_id,score\no1,0.9\no4,0.2\no5,0.49\no6,0.5\n", encoding="utf-8")
    out = _invoke("--verdicts", str(scores), "--threshold", "0.5")
    # o1 verified (label yes), o4 not (label no), o5 not (label no), o6 verified (label no)
    assert out["n"] == 4 and out["accuracy"] == pytest.approx(3 / 4)
    missing = runner.invoke(app, ["calibrate", "--verdicts", str(scores), "--labels", str(SMALL_L)])
    assert missing.exit_code == 2 and "--threshold" in missing.stderr
    booleans = tmp_path / "verified.jsonl"
    booleans.write_text(
        '{"outcome_id": "o1", "verified": true}\n{"outcome_id": "o4", "verified": false}\n'
        '{"outcome_id": "o6", "decision": "verified"}\n',
        encoding="utf-8",
    )
    out = _invoke("--verdicts", str(booleans))
    assert out["n"] == 3 and out["accuracy"] == pytest.approx(2 / 3)


def test_a_verdict_without_confidence_rubric_and_panel_is_no_longer_refused(tmp_path: Path) -> None:
    path = tmp_path / "v.jsonl"
    path.write_text('{"outcome_id": "o1", "decision": "verified"}\n', encoding="utf-8")
    verdicts, labels = load_files(path, SMALL_L)
    assert verdicts[0].confidence is None and verdicts[0].decision == "verified"
    report = calibrate(verdicts, labels, n_boot=50, seed=0).to_dict()
    assert report["n"] == 1 and report["reliability"]["n"] == 0
    html = tmp_path / "r.html"
    result = runner.invoke(
        app, ["calibrate", "--verdicts", str(path), "--labels", str(SMALL_L), "--html", str(html)]
    )
    assert result.exit_code == 0, result.output
    assert "reliability diagram: skipped: the verdicts carry no confidence" in html.read_text()
    assert "reliability diagram: skipped" in result.stdout


def test_mixed_confidence_uses_those_that_have_it(tmp_path: Path) -> None:
    path = tmp_path / "v.jsonl"
    path.write_text(
        '{"outcome_id": "o1", "decision": "verified", "confidence": 0.9}\n'
        '{"outcome_id": "o4", "decision": "verified"}\n',
        encoding="utf-8",
    )
    report = calibrate(*load_files(path, SMALL_L), n_boot=50, seed=0).to_dict()
    assert report["reliability"]["n"] == 1
    assert report["reliability"]["note"].startswith("1 of 2 decided verdicts carry no confidence")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("outcome_id,decision\no1,maybe\n", "line 2: column 'decision' has 'maybe'"),
        ("outcome_id,decision\no1,\n", "line 2: no decision"),
        ("id,decision\no1,pass\n", "no outcome id in column 'outcome_id'; name the id column"),
        ("outcome_id,score\no1,high\n", "column 'score' holds a score but no threshold"),
        ("outcome_id,decision,confidence\no1,pass,1.5\n", "field 'confidence'"),
    ],
)
def test_bad_rows_name_the_line_and_the_fix(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "v.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(
        CalibrationInputError, match=message.replace("(", r"\(").replace(")", r"\)")
    ):
        load_files(path, SMALL_L)
    result = runner.invoke(app, ["calibrate", "--verdicts", str(path), "--labels", str(SMALL_L)])
    assert result.exit_code == 2


def test_score_rules() -> None:
    cols = VerdictColumns(threshold=0.5)
    assert to_tool_verdict({"outcome_id": "a", "score": 0.5}, columns=cols).decision == "verified"
    with pytest.raises(ValueError, match="finite number"):
        to_tool_verdict({"outcome_id": "a", "score": "nan"}, columns=cols)
    with pytest.raises(ValueError, match="finite number"):
        to_tool_verdict({"outcome_id": "a", "score": True}, columns=cols)
    assert VerdictColumns().explicit is False and cols.explicit is True


def test_csv_labels_and_db_mapping_refused(tmp_path: Path) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("outcome_id,resolved\no1,true\no5,false\n", encoding="utf-8")
    verdicts = _two_column_csv(tmp_path / "tool.csv")
    result = runner.invoke(
        app, ["calibrate", "--verdicts", str(verdicts), "--labels", str(labels), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["accuracy"] == 1.0
    refused = runner.invoke(
        app, ["calibrate", "--db", "sqlite:///nowhere.db", "--threshold", "0.5"]
    )
    assert refused.exit_code == 2 and "need no mapping" in refused.stderr
