"""`judge leaderboard --html`: the tau2-bench example page, opened in Chromium.

The page is built by the command from the public tau2-bench leaderboard CSV, compared with the
copy shipped in docs/, then opened from disk: no request may leave the file, the table has its
labels, a header click sorts and the labour-cost field recomputes TCO.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import ROOT, shared_dataset
from tests.web.conftest import block_outside

EXAMPLE_ARGS = [
    "--where", "domain=retail",
    "--name-column", "model", "--name-column", "reasoning_effort", "--name-column", "modality",
    "--rate-column", "pass_1", "--cost-column", "avg_cost_usd_per_trajectory",
    "--tasks", "114", "--detail-column", "submitting_organization", "--labor", "5",
    "--title", "tau2-bench retail: cost per resolved task",
]  # fmt: skip
SHIPPED = ROOT / "docs" / "leaderboard_tau2_retail.html"


def _build(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    csv_path = shared_dataset("leaderboards/tau2_leaderboard_submissions.csv")
    page = tmp_path / "leaderboard.html"
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "leaderboard", "--results", str(csv_path),
         *EXAMPLE_ARGS, "--html", str(page), "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return page, json.loads(done.stdout)


def _column(page: Any, index: int) -> list[str]:
    return [
        cell.inner_text().strip()
        for cell in page.locator(f"#board tbody tr td:nth-child({index})").all()
    ]


def test_leaderboard_page_in_chromium(browser: Any, screenshots: Path, tmp_path: Path) -> None:
    built, result = _build(tmp_path)
    html = built.read_text(encoding="utf-8")
    assert html == SHIPPED.read_text(encoding="utf-8"), "rebuild it: command in docs/costs.md"
    rows = result["rows"]
    assert len(rows) == 9 and result["source"].startswith("tau2_leaderboard_submissions.csv: 9")
    for row in rows:
        assert row["cost_per_resolved"] == (
            row["cost_per_attempt"] / row["resolved_rate"] if row["resolved_rate"] else None
        )

    context = browser.new_context(viewport={"width": 1500, "height": 900})
    outside = block_outside(context)
    page = context.new_page()
    try:
        page.goto(built.as_uri())
        headers = [h.inner_text().strip() for h in page.locator("#board thead th").all()]
        assert headers[:3] == ["#", "agent", "submitting organization"]
        assert headers[3].startswith("resolved rate (95% CI)")
        assert "cost per resolved task" in headers and headers[-2] == "TCO at $5.00"
        assert _column(page, 2)[0] == rows[0]["name"]
        assert page.locator("#board tbody tr").count() == 9
        page.screenshot(path=str(screenshots / "01-leaderboard.png"), full_page=True)

        page.locator("#board thead th", has_text="cost per resolved task").click()
        values = [float(v) for v in page.locator("#board tbody tr td:nth-child(6)").evaluate_all(
            "cells => cells.map(c => c.dataset.value)")]  # fmt: skip
        assert values == sorted(values)
        header = page.locator("#board thead th", has_text="cost per resolved task")
        assert header.get_attribute("aria-sort") == "ascending"
        header.click()
        assert header.get_attribute("aria-sort") == "descending"
        first = page.locator("#board tbody tr").first.locator("td:nth-child(2)").inner_text()
        assert "qwen3.5-omni-plus-realtime" in first  # $1.25 per resolved task, the dearest
        page.screenshot(
            path=str(screenshots / "02-sorted-by-cost-per-resolved.png"), full_page=True
        )

        page.fill("#labor", "0")
        assert page.locator("#labor-shown").inner_text() == "$0.00"
        for tr in page.locator("#board tbody tr").all():
            cost = tr.get_attribute("data-cost")
            tco = tr.locator("td.tco").get_attribute("data-value")
            assert cost is not None and tco is not None
            assert abs(float(tco) - float(cost)) < 1e-12  # no labour: TCO is the token cost
        page.fill("#labor", "100")
        assert page.locator("#labor-shown").inner_text() == "$100.00"
        page.screenshot(path=str(screenshots / "03-labour-100.png"), full_page=True)
    finally:
        context.close()
    assert outside == []
