"""Web interface fixtures: a seeded ledger (SQLite and PostgreSQL), keys, and a Chromium browser.

The ledger is seeded the way a user would: ``judge verify`` on ``datasets/tickets.jsonl`` (with
the labels taken out, so the tickets need review) into tenant ``acme`` with the default local
panel, then half of the dataset's own labels recorded as earlier human labels, so calibration
has something to show before the test labels anything. Tenant ``globex`` has a key and nothing
else.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.ledger.conftest import BACKENDS, _pg_schema

REPO = Path(__file__).resolve().parents[2]
TICKETS = REPO / "datasets" / "tickets.jsonl"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Every second ticket of the dataset has its human label recorded before the test starts.
SEEDED_LABEL_EVERY = 2


@dataclass(frozen=True)
class Seeded:
    """A seeded ledger: its URL and the API keys of ``acme`` (with data) and ``globex`` (empty)."""

    db_url: str
    acme_key: str
    acme_key_id: str
    globex_key: str
    seeded_labels: int


def seed_ledger(db_url: str, work: Path) -> Seeded:
    """Run ``judge verify`` on the unlabelled tickets and add tenants and labels.

    ``judge verify`` runs as a child process: Playwright's sync API keeps an event loop running
    in this thread, and the command starts its own.
    """
    from judge.models import Label
    from ledger.db import make_engine
    from ledger.schema import migrate
    from ledger.store import Ledger
    from ledger.tenants import create_tenant

    rows = [json.loads(line) for line in TICKETS.read_text(encoding="utf-8").splitlines() if line]
    unlabelled = work / "tickets-unlabelled.jsonl"
    with unlabelled.open("w", encoding="utf-8") as out:
        for row in rows:
            row = dict(row)
            row.pop("label", None)
            out.write(json.dumps(row) + "\n")
    engine = make_engine(db_url)
    try:
        migrate(engine)
        acme = create_tenant(engine, "acme")
        globex = create_tenant(engine, "globex")
        result = subprocess.run(
            [sys.executable, "-m", "app.cli", "verify", str(unlabelled), "--db", db_url,
             "--tenant", "acme", "--out", str(work / "verdicts.jsonl"), "--json"],
            cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr + result.stdout
        ledger = Ledger(engine, tenant="acme")
        seeded = 0
        for row in rows[::SEEDED_LABEL_EVERY]:
            ledger.record_label(row["id"], Label.model_validate(row["label"]), source="seed")
            seeded += 1
    finally:
        engine.dispose()
    return Seeded(
        db_url=db_url,
        acme_key=acme.key,
        acme_key_id=acme.key_id,
        globex_key=globex.key,
        seeded_labels=seeded,
    )


@pytest.fixture(params=BACKENDS)
def seeded(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Seeded]:
    """A seeded ledger on SQLite or on a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield seed_ledger(f"sqlite:///{tmp_path}/web.db", tmp_path)
        return
    with _pg_schema() as url:
        yield seed_ledger(url, tmp_path)


def _chromium_or_skip() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    if os.environ.get("CI") == "true":
        pytest.fail(
            f"CI must have Chromium at {CHROMIUM}: install the Debian package `chromium` "
            "(.ci/run does)"
        )
    pytest.skip(f"no Chromium at {CHROMIUM}: `apt-get install chromium` to run the browser tests")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless Chromium (the machine's /usr/bin/chromium) through Playwright's sync API.

    Module-scoped: while Playwright's sync API is open it holds an event loop on the main thread,
    which would break every later test (and doctest) that calls ``asyncio.run``.
    """
    path = _chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=str(path), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def screenshots(request: pytest.FixtureRequest) -> Path:
    """Where this test saves its screenshots: ``out/screenshots/<test>`` under the repository.

    ``WEB_SCREENSHOTS_DIR`` moves them elsewhere. The path is printed (``pytest -s`` shows it,
    and it is in the captured output of a failure).
    """
    base = Path(os.environ.get("WEB_SCREENSHOTS_DIR") or REPO / "out" / "screenshots")
    name = request.node.name.replace("[", "-").replace("]", "")
    folder = base / name
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {folder}")
    return folder


def block_outside(context: Any) -> list[str]:
    """Abort every request of ``context`` that leaves the file; returns the list it logs them in
    (a self-contained page must leave it empty)."""
    outside: list[str] = []
    context.route(
        "**/*",
        lambda route: (
            (outside.append(route.request.url), route.abort())
            if not route.request.url.startswith("file://")
            else route.continue_()
        ),
    )
    return outside
