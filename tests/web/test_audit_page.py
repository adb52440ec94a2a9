"""`judge audit --html`: the dispute pack opened in Chromium, offline, with hostile text inert."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ledger.audit_html import render_audit_html
from ledger.db import make_engine
from ledger.schema import migrate
from tests.ledger.test_audit import _disputed_with_evidence
from tests.web.conftest import block_outside


def test_dispute_pack_in_chromium(browser: Any, screenshots: Path, tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    migrate(engine)
    try:
        report = _disputed_with_evidence(engine)
    finally:
        engine.dispose()
    page_file = tmp_path / "audit.html"
    page_file.write_text(render_audit_html(report), encoding="utf-8")
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    outside = block_outside(context)
    dialogs: list[str] = []
    page = context.new_page()
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    try:
        page.goto(page_file.as_uri())
        cards = page.locator(".card").all_inner_texts()
        assert any("disputed" in c and "$0.99" in c for c in cards)
        article = page.locator("article.dispute")
        assert article.count() == 1
        text = article.inner_text()
        assert "T-EV: assumed, $0.99" in text and "not verified" in text
        assert "the first 3 of 15 messages left out" in text
        assert "<b>never confirmed</b>" in text  # shown as text, not markup
        assert article.locator("blockquote").inner_text() == "message 14 <script>"
        assert article.locator(".msg").count() == 12
        assert page.locator("script").count() == 0 and dialogs == []
        page.screenshot(path=str(screenshots / "01-dispute-pack.png"), full_page=True)
    finally:
        context.close()
    assert outside == []
