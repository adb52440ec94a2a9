"""Issue 17, section 4, in the web interface: NUL characters in review paths and notes.

SQLite and PostgreSQL (PostgreSQL cannot store or even compare a NUL, which once made these 500).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.ledger.conftest import BACKENDS, _pg_schema
from tests.web.test_pages import Site, _csrf, _labels, _login, _seed


@pytest.fixture(params=BACKENDS)
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    """The seeded site of test_pages (outcomes with verdicts, tenants acme and globex)."""
    from api.app import create_app

    with _pg_schema() if request.param != "sqlite" else nullcontext() as pg_url:
        db_url = pg_url or f"sqlite:///{tmp_path}/pages.db"
        acme, globex, sampled, unsampled = _seed(db_url)
        app = create_app(db_url=db_url, embedded_worker=False)
        with TestClient(app, base_url="https://testserver") as client:
            yield Site(client, db_url, acme, globex, sampled, unsampled)


def test_a_nul_in_the_review_path_is_404_and_writes_nothing(site: Site) -> None:
    client = site.client
    _login(client, site.acme)
    csrf = _csrf(client.get("/ui/review").text)
    for path in ("/ui/review/A-early%00", "/ui/review/%00", "/ui/review/A%E2%80%AEearly"):
        page = client.get(path)
        assert page.status_code == 404 and "text/html" in page.headers["content-type"], page.text
        posted = client.post(path, data={"csrf": csrf, "resolved": "yes"})
        assert posted.status_code == 404, posted.text
    assert _labels(site.db_url) == []


def test_a_nul_in_the_review_note_is_422_with_the_fix_and_writes_nothing(site: Site) -> None:
    client = site.client
    _login(client, site.acme)
    csrf = _csrf(client.get("/ui/review/A-early").text)
    posted = client.post(
        "/ui/review/A-early", data={"csrf": csrf, "resolved": "no", "note": "came\x00back"}
    )
    assert posted.status_code == 422, posted.text
    assert "NUL character" in posted.text and "remove it" in posted.text
    assert _labels(site.db_url) == []
    saved = client.post(
        "/ui/review/A-early",
        data={"csrf": csrf, "resolved": "no", "note": "came back"},
        follow_redirects=False,
    )
    assert saved.status_code == 303 and len(_labels(site.db_url)) == 1
