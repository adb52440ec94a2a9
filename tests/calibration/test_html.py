"""The self-contained HTML calibration report."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app
from calibration.html import render_html
from calibration.report import calibrate

FIXTURES = Path(__file__).parent / "fixtures"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_cli_writes_a_self_contained_report(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = CliRunner().invoke(
        app,
        [
            "calibrate",
            "--verdicts",
            str(FIXTURES / "verdicts_medium.jsonl"),
            "--labels",
            str(FIXTURES / "labels_medium.jsonl"),
            "--seed",
            "2",
            "--n-boot",
            "200",
            "--html",
            str(out),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    # No external request: no src/href pointing anywhere but inline data, no scripts.
    assert re.findall(r'(?:src|href)="(?!data:)', html) == []
    assert "<script" not in html and "<link" not in html
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == 3  # confusion matrix, reliability diagram, agreement over time
    assert all(base64.b64decode(i).startswith(PNG_MAGIC) for i in images)
    for text in ("gpt-4o-mini", "claude-haiku", "request_understood", "Cohen", "human ceiling"):
        assert text in html


def test_names_are_escaped_and_missing_dates_are_explained() -> None:
    verdicts = [
        {
            "outcome_id": f"o{i}",
            "decision": "verified" if i % 2 else "not_verified",
            "confidence": 0.8,
            "rubric": "r",
            "panel": "p",
            "judges": [{"judge": "<script>x</script>", "model": "m", "decision": "verified"}],
        }
        for i in range(8)
    ]
    labels = [{"outcome_id": f"o{i}", "resolved": i % 3 == 0} for i in range(8)]
    report = calibrate(verdicts, labels, seed=0, n_boot=100).to_dict()
    html = render_html(report, title="A & B")
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "A &amp; B" in html
    assert "needs labels with dates" in html
    assert html.count("data:image/png") == 2  # no over-time plot without dates


def test_render_rejects_something_else() -> None:
    with pytest.raises(ValueError, match="calibrate"):
        render_html({"n": 1})
