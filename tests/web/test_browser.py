"""The web interface in a real browser (Chromium via Playwright) against a real `judge serve`.

One flow per database: log in with acme's key, open the review queue, label an item with the
keyboard only, see the label in the ledger and in calibration, see the cost page react to the
labour cost, and check that globex's key sees none of acme's outcomes and that revoking a key
logs its browser out. Screenshots of every page are saved (path printed).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.api.live import LiveServer
from tests.web.conftest import Seeded

pytestmark = pytest.mark.slow

#: Every visible form control must have a label (its own <label>, or aria-label).
_UNLABELLED_JS = """() => Array.from(document.querySelectorAll('input, select, textarea'))
  .filter(el => el.type !== 'hidden')
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
  .map(el => el.name || el.id || el.outerHTML)"""


def _int(page: Any, testid: str) -> int:
    return int(page.get_by_test_id(testid).inner_text().strip())


def _assert_labelled(page: Any) -> None:
    assert page.evaluate(_UNLABELLED_JS) == [], f"inputs without a label on {page.url}"


def _login(page: Any, base: str, key: str, shots: Path | None = None) -> None:
    page.goto(f"{base}/ui/review")
    assert "/ui/login" in page.url  # not logged in: sent to the login form
    _assert_labelled(page)
    page.get_by_label("API key").fill(key)
    if shots is not None:
        page.screenshot(path=str(shots / "01-login.png"))
    page.get_by_label("API key").press("Enter")
    page.wait_for_url(re.compile(r"/ui/review$"))


def _labels_of(db_url: str, outcome_id: str) -> list[Any]:
    from ledger.db import make_engine
    from ledger.store import Ledger

    engine = make_engine(db_url)
    try:
        return list(Ledger(engine, tenant="acme").iter_labels(outcome_id=outcome_id))
    finally:
        engine.dispose()


def test_review_label_calibration_cost_and_isolation(
    browser: Any, seeded: Seeded, screenshots: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    server = LiveServer(seeded.db_url, log=tmp_path / "serve.log")
    try:
        context = browser.new_context(viewport={"width": 1360, "height": 900})
        page = context.new_page()
        _login(page, server.url, seeded.acme_key, screenshots)
        cookie = next(c for c in context.cookies() if c["name"] == "oj_session")
        assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
        assert seeded.acme_key not in cookie["value"]  # a signed token, never the key

        # Calibration before labelling.
        page.goto(f"{server.url}/ui/calibration")
        _assert_labelled(page)
        labelled_before = _int(page, "labelled-count")
        assert labelled_before == seeded.seeded_labels
        compared_before = _int(page, "compared-count")
        expect(page.get_by_test_id("agreement-table")).to_contain_text("local@")
        expect(page.get_by_test_id("confusion")).to_be_visible()
        page.screenshot(path=str(screenshots / "02-calibration-before.png"), full_page=True)

        # The queue, by keyboard: j selects the first item, Enter opens it.
        page.goto(f"{server.url}/ui/review")
        queued = _int(page, "queue-count")
        assert queued > 0
        first_id = page.get_by_test_id("queue-item").first.inner_text()
        page.screenshot(path=str(screenshots / "03-queue.png"), full_page=True)
        page.keyboard.press("j")
        expect(page.get_by_test_id("queue-item").first).to_be_focused()
        page.keyboard.press("Enter")
        expect(page.get_by_test_id("outcome-id")).to_have_text(first_id)
        _assert_labelled(page)
        page.screenshot(path=str(screenshots / "04-item.png"), full_page=True)

        # Label it: n (not resolved), a criterion, s (save) -> the next item, label stored.
        page.keyboard.press("n")
        expect(page.locator("#resolved-no")).to_be_checked()
        page.locator("#crit-answer_correct").check()
        page.keyboard.press("Escape")
        page.keyboard.press("s")
        page.wait_for_url(re.compile(r"saved="))
        expect(page.get_by_role("status")).to_contain_text(first_id)
        labels = _labels_of(seeded.db_url, first_id)
        assert [(s.source, s.label.resolved) for s in labels] == [("web", False)]
        assert labels[0].label.criteria["answer_correct"] is True
        assert labels[0].label.criteria["request_understood"] is False
        assert labels[0].label.by == f"web:{seeded.acme_key_id}"

        # The queue shrank by one and the labelled outcome left it.
        page.goto(f"{server.url}/ui/review")
        assert _int(page, "queue-count") == queued - 1
        expect(page.get_by_test_id("queue-item").filter(has_text=first_id)).to_have_count(0)
        # The queue is reachable with Tab alone.
        for _ in range(12):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.dataset.testid") == "queue-item":
                break
        else:
            pytest.fail("Tab never reached a queue item")

        # Calibration changed at once.
        page.goto(f"{server.url}/ui/calibration")
        assert _int(page, "labelled-count") == labelled_before + 1
        assert _int(page, "compared-count") == compared_before + 1
        expect(page.get_by_test_id("gate-status")).to_have_text("provisional")
        page.screenshot(path=str(screenshots / "05-calibration-after.png"), full_page=True)

        # Cost: a higher labour cost raises each path's TCO.
        page.goto(f"{server.url}/ui/cost")
        _assert_labelled(page)
        expect(page.get_by_test_id("tco-table")).to_be_visible()
        tco_low = page.get_by_test_id("tco-A").inner_text()
        page.get_by_label("Labour cost per failed task (USD)").fill("50")
        page.get_by_label("Labour cost per failed task (USD)").press("Enter")
        page.wait_for_url(re.compile(r"labor=50"))
        tco_high = page.get_by_test_id("tco-A").inner_text()
        assert float(tco_high.strip("$").replace(",", "")) > float(tco_low.strip("$"))
        expect(page.get_by_test_id("tier-table")).to_contain_text("confirmed")
        page.screenshot(path=str(screenshots / "06-cost.png"), full_page=True)
        item_url = f"{server.url}/ui/review/{first_id}"

        # globex sees none of it.
        other = browser.new_context()
        globex = other.new_page()
        _login(globex, server.url, seeded.globex_key)
        expect(globex.get_by_test_id("queue-empty")).to_be_visible()
        response = globex.goto(item_url)
        assert response is not None and response.status == 404
        expect(globex.get_by_test_id("error-message")).to_contain_text(first_id)
        globex.screenshot(path=str(screenshots / "07-globex-404.png"))
        globex.goto(f"{server.url}/ui/calibration")
        assert _int(globex, "labelled-count") == 0
        other.close()

        # Revoking acme's key logs the browser out on its next request.
        from ledger.db import make_engine
        from ledger.tenants import revoke_key

        engine = make_engine(seeded.db_url)
        try:
            assert revoke_key(engine, seeded.acme_key_id)
        finally:
            engine.dispose()
        page.goto(f"{server.url}/ui/review")
        assert "/ui/login" in page.url
        expect(page.get_by_role("alert")).to_contain_text("revoked")
        context.close()
    except Exception:
        print(server.output())
        raise
    finally:
        server.stop()
